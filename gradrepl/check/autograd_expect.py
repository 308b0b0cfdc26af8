"""A lesson's point checked as autograd sees it, not only as printed: after a cell, the named
tensors it changed (their grad_fn, requires_grad and grad values) and the backward calls it made
(each call's root and which grads it wrote fresh or accumulated). Recorded by `check --update
--autograd` beside the outputs (a golden line's `autograd`, a notebook cell's
`metadata.gradrepl.autograd`), and compared whenever they are there:

    {"tensors": {"x": {"shape": [2], "requires_grad": true, "grad_fn": null, "grad": [2.0, 4.0]}},
     "backward": [{"call": "y.backward()", "leaves": {"x": "fresh"}}]}

A grad is compared value by value with the check's tolerances (the probe's preview: up to its
corners for a big tensor); names past the first TENSORS_KEPT of a cell, calls past CALLS_KEPT
and leaves past LEAVES_KEPT of a call are not recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gradrepl.check.tensor_text import Number, Tolerance
from gradrepl.protocol import BackwardEvent, TensorInfo

TENSORS_KEPT = 20
CALLS_KEPT = 10
LEAVES_KEPT = 20


def _grad_values(info: TensorInfo) -> Any:
    return None if info.grad is None else _plain(info.grad.preview)


def _plain(preview: Any) -> Any:
    if isinstance(preview, tuple | list):
        return [_plain(item) for item in preview]
    return preview


def _described(info: TensorInfo) -> dict[str, Any]:
    return {"shape": list(info.shape), "requires_grad": info.requires_grad, "grad_fn": info.grad_fn,
            "grad": _grad_values(info)}


def _relevant(info: TensorInfo) -> bool:
    return info.requires_grad or info.grad is not None or info.grad_fn is not None


def _call(event: BackwardEvent) -> dict[str, Any]:
    root = event.expression or "?"
    call = f"{root}.backward()" if event.kind == "backward" else f"torch.autograd.grad({root}, …)"
    leaves = {leaf.name: "accumulated" if leaf.accumulated else "fresh" for leaf in event.leaves[:LEAVES_KEPT]}
    return {"call": call, "leaves": leaves}


def record(before: Mapping[str, TensorInfo], after: Sequence[TensorInfo], events: Sequence[BackwardEvent]) -> dict[str, Any]:
    """The expectations of one cell: the autograd-relevant tensors it changed, and its calls."""
    tensors: dict[str, Any] = {}
    for info in after:
        if len(tensors) >= TENSORS_KEPT:
            break
        if not _relevant(info):
            continue
        described = _described(info)
        old = before.get(info.name)
        if old is None or _described(old) != described:
            tensors[info.name] = described
    return {"tensors": tensors, "backward": [_call(event) for event in events[:CALLS_KEPT]]}


def differences(expected: Mapping[str, Any], after: Sequence[TensorInfo], events: Sequence[BackwardEvent],
                tolerance: Tolerance) -> list[str]:
    """What differs from the expectations, one line each."""
    lines: list[str] = []
    table = {info.name: info for info in after}
    for name, want in (expected.get("tensors") or {}).items():
        info = table.get(name)
        if info is None:
            lines.append(f"{name}: expected after this cell, no tensor of that name")
            continue
        got = _described(info)
        for key in ("shape", "requires_grad", "grad_fn"):
            if want.get(key) != got[key]:
                lines.append(f"{name}.{key}: {want.get(key)!r} expected, {got[key]!r} now")
        problem = _values_problem(want.get("grad"), got["grad"], tolerance)
        if problem is not None:
            lines.append(f"{name}.grad: {problem}")
    calls = expected.get("backward")
    if calls is not None:
        made = [_call(event) for event in events[:CALLS_KEPT]]
        if len(calls) != len(made):
            lines.append(f"{len(calls)} backward call{'s' if len(calls) != 1 else ''} expected, {len(made)} made")
        for number, (want, got) in enumerate(zip(calls, made, strict=False), start=1):
            if want.get("call") != got["call"]:
                lines.append(f"backward call {number}: {want.get('call')} expected, {got['call']} made")
            for leaf, kind in (want.get("leaves") or {}).items():
                now = got["leaves"].get(leaf)
                if now != kind:
                    lines.append(f"backward call {number}: {leaf}.grad {kind} expected, "
                                 + (f"{now}" if now else "not written"))
    return lines


def _values_problem(want: Any, got: Any, tolerance: Tolerance) -> str | None:
    if want is None or got is None:
        return None if want is got else f"{'none' if want is None else 'a grad'} expected, {'none' if got is None else 'a grad'} now"
    flat_want, flat_got = _flat(want), _flat(got)
    if _layout(want) != _layout(got):
        return "its shape differs from the one expected"
    for index, (a, b) in enumerate(zip(flat_want, flat_got, strict=True)):
        if a == b:
            continue
        first, second = _number(a), _number(b)
        if first is None or second is None or not tolerance.close(first, second):
            return f"value {index + 1} of {len(flat_want)}: {a} expected, {b} now"
    return None


def _flat(values: Any) -> list[Any]:
    if isinstance(values, list):
        return [item for value in values for item in _flat(value)]
    return [values]


def _layout(values: Any) -> Any:
    if isinstance(values, list):
        return [_layout(value) for value in values]
    return "…" if values == "…" else "#"


def _number(value: Any) -> Number | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return Number(str(value), number, 0.0, isinstance(value, int))
