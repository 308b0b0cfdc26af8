"""A cell's backward calls as groups of consecutive calls alike (the kernel numbers each call's
group), each holding the calls described and the runs of calls only counted between them; and
what a group says as a whole: its steps, its grad-norm trajectory, what reset the grads
between its calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gradrepl.protocol import BackwardEvent
from gradrepl.protocol.backward import CallRun, Norm, ResetKind

MIXED = 0  # the group number of a run of calls of several groups


@dataclass(frozen=True)
class CallGroup:
    """Consecutive calls of one cell alike: root expression, graph, arguments."""

    calls: tuple[BackwardEvent, ...]  # described, in step order
    runs: tuple[CallRun, ...] = ()  # counted between them, in step order

    @property
    def first_step(self) -> int:
        return min([*(c.step for c in self.calls[:1]), *(r.first_step for r in self.runs[:1])])

    @property
    def last_step(self) -> int:
        return max([*(c.step for c in self.calls[-1:]), *(r.last_step for r in self.runs[-1:])])

    @property
    def count(self) -> int:
        return len(self.calls) + self.counted

    @property
    def counted(self) -> int:
        """Calls counted, not described."""
        return sum(run.count for run in self.runs)

    @property
    def is_single(self) -> bool:
        return self.count == 1 and len(self.calls) == 1

    @property
    def head(self) -> BackwardEvent | None:
        return self.calls[0] if self.calls else None

    @property
    def tail(self) -> BackwardEvent | None:
        return self.calls[-1] if self.calls else None

    @property
    def root(self) -> str:
        head = self.head
        if head is not None:
            return head.root_text
        return next((run.root for run in self.runs if run.root), "calls of several kinds")

    def norms(self) -> list[Norm]:
        """The grad norm of each call in step order; a counted run's values stand for `bucket` calls each."""
        items: list[tuple[int, list[Norm]]] = [(c.step, [c.norm]) for c in self.calls]
        for run in self.runs:
            series: list[Norm] = []
            for value in run.norms:
                series += [value] * run.bucket
            items.append((run.first_step, series[:run.count]))
        return [norm for _, part in sorted(items, key=lambda item: item[0]) for norm in part]

    def resets_between(self) -> tuple[int, set[ResetKind]]:
        """How many of the calls after the first had their grads reset since the call before,
        and the kinds of reset seen (of the calls described)."""
        first = self.first_step
        count = sum(1 for c in self.calls if c.resets and c.step != first)
        count += sum(run.resets - (1 if run.first_step == first and run.resets else 0) for run in self.runs)
        kinds = {reset.kind for c in self.calls if c.step != first for reset in c.resets}
        return count, kinds


def call_groups(events: Sequence[BackwardEvent]) -> list[CallGroup]:
    """The cell's calls (events in step order, each with the runs counted before it) as groups.
    Events from before calls were numbered (group 0, step 0) are a group each."""
    items: list[BackwardEvent | CallRun] = []
    for event in events:
        items += event.skipped_before
        items.append(event)
    groups: list[CallGroup] = []
    for item in items:
        number = item.group
        last = groups[-1] if groups else None
        if last is not None and number != MIXED and _group_of(last) == number:
            groups[-1] = _with(last, item)
        else:
            groups.append(_with(CallGroup(()), item))
    return groups


def _group_of(group: CallGroup) -> int:
    return (group.calls[0].group if group.calls else group.runs[0].group) if group.calls or group.runs else -1


def _with(group: CallGroup, item: BackwardEvent | CallRun) -> CallGroup:
    if isinstance(item, CallRun):
        return CallGroup(group.calls, (*group.runs, item))
    return CallGroup((*group.calls, item), group.runs)
