"""A cell's backward calls, kept within bounds however many the cell makes: each numbered
(its step), consecutive calls alike put in one group, the first FIRST_KEPT and the last
LAST_KEPT kept whole, and those between counted by run of one group, with their grad norms
(a bounded series) so the trajectory spans every call. Never imports torch.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from gradrepl.inkernel.traced_call import TracedCall
from gradrepl.protocol.backward import CallRun, Norm

FIRST_KEPT = 25  # calls of a cell kept whole from the first
LAST_KEPT = 25  # and from the last
DESCRIBED_IN_FULL = 50  # calls of a cell described in full (node hooks, values before); later ones in brief
NORMS_KEPT = 64  # values in a run's norm series; past twice that, neighbours merge
MAX_RUNS = 200  # runs counted between the first and last calls kept; later ones join the last, as mixed
MIXED = 0  # the group of a run holding calls of several groups


def larger(a: Norm, b: Norm) -> Norm:
    """The larger of two norms; not known < a number < "inf" < "nan"."""
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, str) or isinstance(b, str):
        return "nan" if "nan" in (a, b) else "inf"
    return a if a >= b else b


class NormSeries:
    """The norms of a run of calls, `bucket` calls a value (their largest)."""

    def __init__(self) -> None:
        self.values: list[Norm] = []
        self.bucket = 1
        self._pending: Norm = None
        self._filled = 0

    def add(self, norm: Norm) -> None:
        self._pending = larger(self._pending, norm)
        self._filled += 1
        if self._filled < self.bucket:
            return
        self.values.append(self._pending)
        self._pending, self._filled = None, 0
        if len(self.values) >= 2 * NORMS_KEPT:
            pairs = zip(self.values[0::2], self.values[1::2], strict=True)
            self.values = [larger(a, b) for a, b in pairs]
            self.bucket *= 2

    def series(self) -> tuple[Norm, ...]:
        return (*self.values, self._pending) if self._filled else tuple(self.values)


class _Run:
    __slots__ = ("count", "failed", "first_step", "group", "norms", "resets", "root")

    def __init__(self, call: TracedCall) -> None:
        self.group, self.first_step, self.root = call.group, call.step, call.root_text()
        self.count = self.resets = self.failed = 0
        self.norms = NormSeries()

    def add(self, call: TracedCall) -> None:
        self.count += 1
        self.resets += call.was_reset()
        self.failed += call.error is not None
        self.norms.add(call.norm)

    def record(self) -> CallRun:
        return CallRun(self.group, self.first_step, self.count, self.root if self.group != MIXED else "",
                       self.norms.series(), self.norms.bucket, self.resets, self.failed)


class CellCalls:
    """The calls of the cell being run (`start` begins the next cell's)."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self.count = 0
        self.first: list[TracedCall] = []
        self.last: deque[TracedCall] = deque()
        self.between: list[_Run] = []
        self._graphs: dict[Any, int] = {}
        self._likeness: tuple[Any, ...] | None = None
        self._group = 0

    def in_full(self) -> bool:
        """Whether the call about to start is described in full (else in brief)."""
        return self.count < DESCRIBED_IN_FULL

    def graph_number(self, signature: Any) -> int:
        """A small number for a graph's shape: calls through graphs of the same nodes share it."""
        found = self._graphs.get(signature)
        if found is None:
            found = self._graphs[signature] = len(self._graphs) + 1
        return found

    def continues_group(self, call: TracedCall) -> bool:
        """Whether `call` (not yet run: no error yet) is like the one before, so far as it is known."""
        return call.likeness() == self._likeness

    def add(self, call: TracedCall) -> None:
        """A call that has ended (it ran or raised): numbered, grouped and kept."""
        self.count += 1
        call.step = self.count
        likeness = call.likeness()
        if likeness != self._likeness:
            self._group += 1
            self._likeness = likeness
        call.group = self._group
        if len(self.first) < FIRST_KEPT:
            self.first.append(call)
            return
        self.last.append(call)
        if len(self.last) > LAST_KEPT:
            self._count_between(self.last.popleft())

    def _count_between(self, call: TracedCall) -> None:
        runs = self.between
        if runs and (runs[-1].group == call.group or len(runs) >= MAX_RUNS):
            if runs[-1].group != call.group:
                runs[-1].group = MIXED
            runs[-1].add(call)
            return
        runs.append(_Run(call))
        runs[-1].add(call)

    def kept(self) -> list[tuple[TracedCall, tuple[CallRun, ...]]]:
        """The calls kept, in order, each with the runs counted just before it."""
        runs = tuple(run.record() for run in self.between)
        return [*((call, ()) for call in self.first),
                *((call, runs if index == 0 else ()) for index, call in enumerate(self.last))]

    @property
    def counted(self) -> int:
        """Calls counted, not kept."""
        return sum(run.count for run in self.between)
