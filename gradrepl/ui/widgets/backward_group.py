"""Consecutive backward calls alike (a training loop's `loss.backward()`), as one entry of the
backward log: folded, what the calls did together (steps, nodes, what reset the grads between
them, each grad's first and last value, the norm's trajectory); unfolded (Enter), the calls
described one by one, each opening in full, and the count of those between."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from gradrepl.protocol.backward import CallRun
from gradrepl.render.backward_text import described_text, group_header, norm_line, reset_summary, steps_text, trajectories
from gradrepl.render.call_groups import CallGroup
from gradrepl.render.text import counted, failure_text
from gradrepl.ui.widgets.backward_entry import BackwardEntry, member_text, prompt

SPARKLINE_WIDTH = 24


def group_text(execution_count: int | None, group: CallGroup, expanded: bool) -> Text:
    text = Text()
    text.append(prompt(execution_count), style="bold green")
    header = group_header(group)
    steps, _, rest = header.partition(": ")
    call, _, path = rest.partition(" via ")
    text.append(f"{steps}\n", style="green")
    text.append(call, style="bold")
    if path:
        text.append(f"\n  via {path}", style="dim")
    head = group.head
    if head is not None and head.error:
        text.append(f"\n  each {failure_text(head, 6)}"[:160], style="bold red")
    between = reset_summary(group)
    if between:
        text.append(f"\n  {between}", style="cyan")
    norm = norm_line(group, SPARKLINE_WIDTH)
    if norm:
        text.append(f"\n  {norm.split(' (of the')[0]}", style="yellow")
    for line in trajectories(group, values=False):
        text.append(f"\n  {line}")
    described = described_text(group)
    if described:
        text.append(f"\n  {described}", style="dim")
    fold = "Enter folds the calls" if expanded else f"Enter: the {counted(len(group.calls), 'call')} described, one by one"
    text.append(f"\n  {'▾' if expanded else '▸'} {fold}", style="dim")
    return text


def run_text(run: CallRun) -> Text:
    return Text(f"… {counted(run.count, 'call')} counted, not described ({steps_text(run.first_step, run.last_step)})",
                style="dim italic")


class GroupHeader(BackwardEntry):
    """The group's own entry: Enter (or a click) folds and unfolds its calls."""

    def action_open(self) -> None:
        group = self.parent
        if isinstance(group, BackwardGroup):
            group.expanded = not group.expanded


class BackwardGroup(Vertical):
    DEFAULT_CSS = """
    BackwardGroup { height: auto; margin-bottom: 1; }
    BackwardGroup > .member { padding-left: 2; }
    BackwardGroup > .run { padding-left: 2; color: $text-muted; }
    """

    expanded: reactive[bool] = reactive(False)

    def __init__(self, execution_count: int | None, group: CallGroup) -> None:
        super().__init__(classes="group")
        self.execution_count = execution_count
        self.group = group

    def compose(self) -> ComposeResult:
        assert self.group.head is not None
        yield GroupHeader(group_text(self.execution_count, self.group, False),
                          replace(self.group.head, cell=self.execution_count), classes="header")

    def watch_expanded(self, expanded: bool) -> None:
        if not self.is_mounted:
            return
        header = self.query_one(GroupHeader)
        header.update(group_text(self.execution_count, self.group, expanded))
        for child in list(self.children):
            if child is not header:
                child.remove()
        if expanded:
            self.mount_all(self._members())

    def _members(self) -> list[Static]:
        items: list[tuple[int, Static]] = [
            (event.step, BackwardEntry(member_text(event), replace(event, cell=self.execution_count), classes="member"))
            for event in self.group.calls
        ]
        items += [(run.first_step, Static(run_text(run), classes="run")) for run in self.group.runs]
        return [widget for _, widget in sorted(items, key=lambda item: item[0])]
