"""Gradient health over steps, inside the kernel: for each tensor whose grad traced backward
calls wrote (with its norm taken: every call in full, brief calls as their norm budget
allows), the call's number, the grad's norm and the tensor's own norm (one foreach pass over
the tensors the call wrote). Sent with the tensor's description (`grad_history`). Never
imports torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gradrepl.inkernel.grad_watch import norms_of

MAX_POINTS = 128  # a series this long keeps every other point from then on
MAX_SERIES = 20_000  # tensors followed; past it, the oldest are forgotten


class _Series:
    __slots__ = ("_skip", "calls", "every", "grad_norm", "param_norm")

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.grad_norm: list[Any] = []
        self.param_norm: list[Any] = []
        self.every = 1
        self._skip = 0

    def add(self, call: int, grad: Any, param: Any) -> None:
        self._skip += 1
        if self._skip < self.every:
            return
        self._skip = 0
        self.calls.append(call)
        self.grad_norm.append(grad)
        self.param_norm.append(param)
        if len(self.calls) > MAX_POINTS:
            for points in (self.calls, self.grad_norm, self.param_norm):
                del points[1:-1:2]  # every other point, the first and the last kept
            self.every *= 2

    def to_json(self) -> dict[str, Any]:
        return {"calls": list(self.calls), "grad_norm": list(self.grad_norm), "param_norm": list(self.param_norm),
                "every": self.every}


class HealthBook:
    """The series of every tensor, by the probe's number for the tensor object (`serial`)."""

    def __init__(self, serial: Callable[[Any], int]) -> None:
        self._serial = serial
        self.series: dict[int, _Series] = {}
        self.calls = 0  # traced calls with norms, across the session

    def add(self, torch: Any, written: list[tuple[Any, Any]]) -> None:
        """A call wrote these grads: (tensor, grad norm or None when it was not taken)."""
        measured = [(tensor, norm) for tensor, norm in written if norm is not None]
        if not measured:
            return
        self.calls += 1
        params = norms_of(torch, [tensor.detach() for tensor, _ in measured])
        if len(self.series) > MAX_SERIES:
            for key in list(self.series)[: MAX_SERIES // 2]:
                del self.series[key]
        for (tensor, norm), param in zip(measured, params, strict=True):
            key = self._serial(tensor)
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = _Series()
            series.add(self.calls, norm, param)

    def history(self, serial: Any) -> dict[str, Any] | None:
        series = self.series.get(serial) if isinstance(serial, int) else None
        return series.to_json() if series is not None else None

    def stamp(self, serial: int) -> int:
        """Changes whenever `history(serial)` does: the call that last added a point (0: no series)."""
        series = self.series.get(serial)
        return series.calls[-1] if series is not None and series.calls else 0
