"""The snapshot after a cell: every tensor namespace.py finds described once, under its first
name with its others listed, within a time budget.

It costs what changed, not what exists: a tensor whose metadata, values, grad and grad history
are as in the last report, found under the same names, gets the very description sent then
(described_cache.py tells which), and the probe's delta passes over it by identity, neither
copying nor comparing it. Never imports torch: it is looked up in sys.modules.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from operator import is_
from typing import TYPE_CHECKING, Any

from gradrepl.inkernel.described_cache import Kept, Naming
from gradrepl.inkernel.namespace import ITEM, PLAIN, REPORT_SECONDS, Budget, Note, Origin, guarded, tensors_with_origins
from gradrepl.inkernel.values import ValuesMemo, describe_metadata, describe_tensor

if TYPE_CHECKING:
    from gradrepl.inkernel.grad_health import HealthBook

MAX_TENSORS = 5000  # a 100-layer model of a few thousand parameter tensors is listed whole
_deref = weakref.ref.__call__  # a weak reference's object (operator.call is Python 3.11 on)
_NAMING_KEYS = frozenset({"aliases", "module_path", "module_types", "buffer", "grad_history"})


def _rank(origin: Origin) -> int:
    return 2 if origin == ITEM else 1 if origin == PLAIN else 0


class _Listed:
    """One tensor object of the report: where its first name was found, and every name it was
    found under as (rank, order found, name, origin). Its name in the report is the first
    module name, else the first plain name, else the first item name: `x` over `g['x']`."""

    __slots__ = ("names", "position")

    def __init__(self, position: int) -> None:
        self.position = position
        self.names: list[tuple[int, int, str, Origin]] = []

    def naming(self) -> tuple[int, Naming]:
        """Where it goes in the report (where its name was found), and its name, aliases and origin."""
        names = self.names
        if len(names) == 1:
            _, order, name, origin = names[0]
            return order, (name, (), origin)
        _, order, name, origin = first = min(names)
        return order, (name, tuple(other[2] for other in names if other is not first), origin)


class _Plan:
    """Which tensors the names found make, in the report's order, under which names: made again
    only when the names found, their origins or the objects they are bound to differ from the
    last report's (the objects told by weak reference: a tensor freed and another made at its
    address is not taken for it)."""

    __slots__ = ("bound", "names", "namings", "numbers", "origins", "positions", "skipped")

    def __init__(self, names: list[str], objects: list[Any], origins: list[Origin], serial: Callable[[Any], int]) -> None:
        self.names = names
        self.origins = origins
        try:
            self.bound: list[Any] | None = [weakref.ref(t) for t in objects]
        except TypeError:
            self.bound = None
        listed: dict[int, _Listed] = {}
        unlisted: set[int] = set()  # tensors past the limit
        for order, (name, t, origin) in enumerate(zip(names, objects, origins, strict=True)):
            number = serial(t)
            entry = listed.get(number)
            if entry is None:
                if number in unlisted:
                    continue
                if len(listed) >= MAX_TENSORS:
                    unlisted.add(number)
                    continue
                entry = listed[number] = _Listed(order)
            entry.names.append((_rank(origin), order, name, origin))
        rows = sorted((*entry.naming(), entry.position, number) for number, entry in listed.items())
        self.namings: list[Naming] = [naming for _, naming, _, _ in rows]
        self.positions = [position for _, _, position, _ in rows]  # of its first name, in the names found
        self.numbers = [number for _, _, _, number in rows]
        self.skipped = len(unlisted)

    def holds(self, names: list[str], objects: list[Any], origins: list[Origin]) -> bool:
        return (self.bound is not None and names == self.names and origins == self.origins
                and all(map(is_, objects, map(_deref, self.bound))))


class _Sent:
    """What a report sent, for the next to send again when nothing changed."""

    __slots__ = ("described", "plan", "stamps")

    def __init__(self, plan: _Plan, stamps: list[int] | None, described: list[dict[str, Any]]) -> None:
        self.plan = plan
        self.stamps = stamps  # each tensor's grad history stamp (None: no history at all)
        self.described = described


def _describe(torch: Any, tensors: list[Any], plan: _Plan, stamps: list[int] | None, reused: dict[int, Kept],
              memo: ValuesMemo, budget: Budget, health: HealthBook | None, notes: list[str]) -> list[dict[str, Any]]:
    """The plan's tensors' descriptions, in order: as sent last time where `reused` has one and
    its names and history are the same, else made (and kept for the next report)."""
    cache = memo.described
    described = []
    for index, (t, number, naming) in enumerate(zip(tensors, plan.numbers, plan.namings, strict=True)):
        stamp = stamps[index] if stamps is not None else 0
        kept = reused.get(number)
        if kept is not None and kept.stamp == stamp and kept.naming == naming:
            described.append(kept.info)  # as sent last time
            cache.keep_again(number, kept)
            continue
        history = health.history(number) if stamp and health is not None else None
        if kept is not None:  # the same tensor, found under other names or with more history
            info = _named({k: v for k, v in kept.info.items() if k not in _NAMING_KEYS}, naming, history)
        else:
            name = naming[0]
            try:
                if budget.out():
                    budget.unread += 1
                    info = describe_metadata(torch, name, t, memo, note="values not read: the probe's time budget ran out")
                else:
                    info = describe_tensor(torch, name, t, memo)
            except Exception as exc:
                note = f"{name}: not shown ({type(exc).__name__})"
                if memo.first_time(("not shown", number, note)):
                    notes.append(note)
                continue
            info = _named(info, naming, history)
        cache.keep(number, info, naming, stamp)
        described.append(info)
    return described


def _named(info: dict[str, Any], naming: Naming, history: dict[str, Any] | None) -> dict[str, Any]:
    """`info` with the name, aliases, place in its module and grad history put in."""
    name, aliases, origin = naming
    info["name"] = name
    if aliases:
        info["aliases"] = list(aliases)
    if isinstance(origin, tuple):
        path, classes, buffer = origin
        info.update(module_path=list(path), module_types=list(classes), buffer=buffer)
    if history is not None:
        info["grad_history"] = history
    return info


def snapshot(shell: Any, memo: ValuesMemo | None = None, budget: Budget | None = None,
             health: HealthBook | None = None) -> dict[str, Any]:
    """Every named tensor described once, under its first name with its others listed (and its
    grad history from `health`), within `budget` (REPORT_SECONDS from now by default): names
    not looked at by then are counted, tensors found are listed without their values. A tensor
    that cannot be described at all gets a note, as does a container cut short: once while it
    stays so (with `memo`)."""
    memo = memo or ValuesMemo()
    memo.next_snapshot()
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "Tensor") or not hasattr(torch, "nn"):
        return {"tensors": [], "notes": []}
    budget = budget or Budget(REPORT_SECONDS)
    container_notes: list[Note] = []
    notes: list[str] = []
    cache = memo.described
    with guarded(torch, quiet=True):
        found = list(tensors_with_origins(torch, shell, container_notes, budget))
        names, objects, origins = (list(column) for column in zip(*found, strict=True)) if found else ([], [], [])
        last = cache.last if isinstance(cache.last, _Sent) else None
        plan = last.plan if last is not None and last.plan.holds(names, objects, origins) else _Plan(
            names, objects, origins, memo.serial)
        tensors = [objects[position] for position in plan.positions]
        try:
            reused = cache.unchanged(torch, tensors, plan.numbers)
        except Exception:
            cache.forget()
            reused = {}
        stamps = [health.stamp(number) for number in plan.numbers] if health is not None and health.series else None
        if last is not None and last.plan is plan and last.stamps == stamps and len(reused) == len(plan.numbers):
            described = list(last.described)  # nothing about any tensor changed: the very descriptions sent
            cache.keep_all(reused)
        else:
            described = _describe(torch, tensors, plan, stamps, reused, memo, budget, health, notes)
        notes.extend(text for key, text in container_notes if memo.first_time(key))
        memo.finish(torch)
        cache.end_report(_Sent(plan, stamps, described))
    if plan.skipped:
        notes.append(f"{plan.skipped} more tensors not shown (limit {MAX_TENSORS})")
    budget_note = budget.note()
    if budget_note is not None:
        notes.append(budget_note)
    return {"tensors": described, "notes": notes}
