"""The user's names: every tensor reachable by a name the user wrote (`named_tensors`: plain
names, a module's parameters and buffers, one level of lists, tuples and dicts), the snapshot
that describes them after a cell, and `guarded`, the context all of the probe's reads of torch
run in. Never imports torch: it is looked up in sys.modules or given.

The user's objects are read without calling a method their class could override: what a
value is comes from `type()` and the C-level subclass check (`isinstance` would read a
`__class__` property), a module's submodules, parameters and buffers from its own dicts
(`named_modules` is a method a subclass may override, and calls its submodules'), a key's
label from `str`'s and `int`'s own `repr`. What is left is bounded by a `Budget` of time:
once it runs out the report says what it has, with a note.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from gradrepl.inkernel.values import ValuesMemo, describe_metadata, describe_tensor

MAX_TENSORS = 2000
MAX_CONTAINER_ITEMS = 64
REPORT_SECONDS = 3.0  # a cell's report: looking up the names, then describing the tensors
NAMES_SECONDS = 1.0  # looking up the names at a backward call (unnamed past it)

_IPYTHON_CACHE_NAME = re.compile(r"^(_+|_\d+|_i+\d*|_[oid]h|__\w+__)$")


class Budget:
    """Time for one report (or one look-up of names): `out()` once `seconds` have passed, and
    from then on. It counts what was left out, for the report's note."""

    __slots__ = ("_clock", "_end", "_out", "names_left", "names_total", "seconds", "unread")

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds
        self._out = False
        self.names_left = 0  # names not looked at, of names_total
        self.names_total = 0
        self.unread = 0  # tensors found but listed without their values

    def out(self) -> bool:
        if not self._out and self._clock() > self._end:
            self._out = True
        return self._out

    def note(self) -> str | None:
        parts = []
        if self.names_left:
            parts.append(f"{self.names_left:,} of {self.names_total:,} names not looked at")
        if self.unread:
            parts.append(f"{self.unread:,} tensors listed without their values")
        if not parts:
            return None
        return f"the probe's time budget ({self.seconds:g} s) ran out: " + "; ".join(parts)


_subclass = type.__subclasscheck__  # (cls, sub): C-level, whatever a metaclass defines
_own = object.__getattribute__  # an attribute as stored, past a class's __getattribute__


def _is(value: Any, cls: type) -> bool:
    """isinstance(value, cls) from value's type alone: a `__class__` property is not read."""
    return _subclass(cls, type(value))


def _user_names(shell: Any) -> list[tuple[str, Any]]:
    hidden = shell.user_ns_hidden
    missing = object()
    names = []
    for name, value in list(shell.user_ns.items()):
        if type(name) is not str or (name.startswith("_") and _IPYTHON_CACHE_NAME.match(name)):
            continue
        if hidden.get(name, missing) is value:
            continue
        names.append((name, value))
    return names


def _key_label(key: Any) -> str | None:
    kind = type(key)
    if _subclass(str, kind):
        return str.__repr__(key)
    if _subclass(int, kind):  # bool included
        return int.__repr__(key)
    return None


def named_tensors(torch: Any, shell: Any, notes: list[str] | None = None,
                  budget: Budget | None = None) -> Iterator[tuple[str, Any]]:
    """Each tensor reachable by a name the user wrote, one container level deep. A container
    of tensors longer than MAX_CONTAINER_ITEMS gets a line in `notes`. Once `budget` is out,
    the names left are counted in it, not looked at."""
    tensor_type = torch.Tensor
    module_type = torch.nn.Module
    names = _user_names(shell)
    for looked, (name, value) in enumerate(names):
        if budget is not None and budget.out():
            budget.names_left, budget.names_total = len(names) - looked, len(names)
            return
        kind = type(value)
        if _subclass(tensor_type, kind):
            yield name, value
        elif _subclass(module_type, kind):
            yield from _module_tensors(module_type, name, value)
        elif kind is list or kind is tuple:
            found = False
            for index, item in enumerate(value[:MAX_CONTAINER_ITEMS]):
                if _is(item, tensor_type):
                    found = True
                    yield f"{name}[{index}]", item
            if found and notes is not None and len(value) > MAX_CONTAINER_ITEMS:
                notes.append(f"{name}: the first {MAX_CONTAINER_ITEMS} of its {len(value):,} items are listed")
        elif kind is dict:
            found = False
            for count, (key, item) in enumerate(list(itertools.islice(dict.items(value), MAX_CONTAINER_ITEMS + 1))):
                if count >= MAX_CONTAINER_ITEMS:
                    if found and notes is not None:
                        notes.append(f"{name}: the first {MAX_CONTAINER_ITEMS} of its {len(value):,} items are listed")
                    break
                if not _is(item, tensor_type):
                    continue
                label = _key_label(key)
                if label is not None:
                    found = True
                    yield f"{name}[{label}]", item


def _own_dict(module: Any, attribute: str) -> dict[str, Any]:
    try:
        value = _own(module, attribute)
    except Exception:
        return {}
    return value if _is(value, dict) else {}


def _submodules(module_type: Any, module: Any) -> Iterator[tuple[str, Any]]:
    """What `named_modules()` lists (each module once, depth first), read from each module's
    own `_modules` dict."""
    seen: set[int] = set()
    stack = [("", module)]
    while stack:
        prefix, current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield prefix, current
        children = list(dict.items(_own_dict(current, "_modules")))
        for label, child in reversed(children):
            if child is not None and type(label) is str and _is(child, module_type):
                stack.append((f"{prefix}.{label}" if prefix else label, child))


def _module_tensors(module_type: Any, name: str, module: Any) -> list[tuple[str, Any]]:
    """What `named_parameters()` then `named_buffers()` list (each tensor once, under its first
    name), from one walk of the submodules rather than two."""
    parameters: list[tuple[str, Any]] = []
    buffers: list[tuple[str, Any]] = []
    seen_parameters: set[int] = set()
    seen_buffers: set[int] = set()
    for prefix, submodule in _submodules(module_type, module):
        own_parameters, own_buffers = _own_dict(submodule, "_parameters"), _own_dict(submodule, "_buffers")
        if not own_parameters and not own_buffers:
            continue
        start = f"{name}.{prefix}." if prefix else f"{name}."
        for label, item in dict.items(own_parameters):
            if item is not None and id(item) not in seen_parameters:
                seen_parameters.add(id(item))
                parameters.append((start + label, item))
        for label, item in dict.items(own_buffers):
            if item is not None and id(item) not in seen_buffers:
                seen_buffers.add(id(item))
                buffers.append((start + label, item))
    return parameters + buffers


class guarded:
    """No autograd recording, no user __torch_function__ overrides; with `quiet`, no warnings.

    Silencing warnings changes Python's warning filters, which makes it forget the warnings
    it has shown once: a user's warning in a loop would be shown again after each silenced
    block. So only the once-a-cell work is quiet; the backward tracer (every call) is not,
    and reads nothing that warns (grads of leaves, copies of values).

    A class rather than a generator: the tracer enters it a few times in every backward call."""

    __slots__ = ("_grad_was", "_no_subclasses", "_quiet", "_silenced", "_torch")

    def __init__(self, torch: Any, quiet: bool = False) -> None:
        self._torch = torch
        self._quiet = quiet

    def __enter__(self) -> None:
        torch = self._torch
        self._grad_was = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)  # torch.no_grad() without its Python layers
        try:
            self._no_subclasses = getattr(torch._C, "DisableTorchFunctionSubclass", contextlib.nullcontext)()
            self._no_subclasses.__enter__()
            try:
                self._silenced = warnings.catch_warnings() if self._quiet else None
                if self._silenced is not None:
                    self._silenced.__enter__()
                    warnings.simplefilter("ignore")
            except BaseException:
                self._no_subclasses.__exit__(*sys.exc_info())
                raise
        except BaseException:
            torch._C._set_grad_enabled(self._grad_was)
            raise

    def __exit__(self, *exc_info: Any) -> None:
        try:
            try:
                if self._silenced is not None:
                    self._silenced.__exit__(*exc_info)
            finally:
                self._no_subclasses.__exit__(*exc_info)
        finally:
            self._torch._C._set_grad_enabled(self._grad_was)


def snapshot(shell: Any, memo: ValuesMemo | None = None, budget: Budget | None = None) -> dict[str, Any]:
    """Every named tensor described, within `budget` (REPORT_SECONDS from now by default):
    names not looked at by then are counted, tensors found are listed without their values.
    A tensor that cannot be described at all gets a note, once while it stays (with `memo`)."""
    memo = memo or ValuesMemo()
    memo.next_snapshot()
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "Tensor") or not hasattr(torch, "nn"):
        return {"tensors": [], "notes": []}
    budget = budget or Budget(REPORT_SECONDS)
    tensors: list[dict[str, Any]] = []
    notes: list[str] = []
    skipped = 0
    with guarded(torch, quiet=True):
        for name, t in named_tensors(torch, shell, notes, budget):
            if len(tensors) >= MAX_TENSORS:
                skipped += 1
                continue
            try:
                if budget.out():
                    budget.unread += 1
                    tensors.append(describe_metadata(torch, name, t, memo, note="values not read: the probe's time budget ran out"))
                else:
                    tensors.append(describe_tensor(torch, name, t, memo))
            except Exception as exc:
                note = f"{name}: not shown ({type(exc).__name__})"
                if memo.first_time(("not shown", memo.serial(t), note)):
                    notes.append(note)
    if skipped:
        notes.append(f"{skipped} more tensors not shown (limit {MAX_TENSORS})")
    budget_note = budget.note()
    if budget_note is not None:
        notes.append(budget_note)
    return {"tensors": tensors, "notes": notes}
