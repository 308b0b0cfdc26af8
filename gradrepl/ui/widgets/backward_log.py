"""The backward log: one entry per backward call the probe traced (root, gradient, graph
nodes, each .grad it wrote: fresh or accumulated), numbered within its cell; consecutive
calls alike (a training loop's) are one entry that unfolds (backward_group.py); what reset
the grads between two calls is said between their entries; and, for grads that changed
without a traced call (`x.grad = ...`, `x.grad.zero_()`), an entry from comparing the tensor
table before and after the cell.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import TypeAlias

from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from gradrepl.protocol import BackwardEvent, TensorInfo
from gradrepl.render.backward_text import between_text, group_header
from gradrepl.render.call_groups import call_groups
from gradrepl.render.text import values_preview
from gradrepl.ui.hanging import LabelledRule
from gradrepl.ui.widgets.backward_entry import BackwardEntry, call_text, prompt
from gradrepl.ui.widgets.backward_entry import EventWanted as EntryEventWanted
from gradrepl.ui.widgets.backward_group import BackwardGroup

__all__ = ["BackwardEntry", "BackwardLog", "GradChange", "grad_changes"]


@dataclass(frozen=True)
class GradChange:
    name: str
    before: str | None  # None: the tensor had no grad
    after: str | None
    kind: str  # fresh | accumulated | zeroed | cleared


def _is_zero(info: TensorInfo) -> bool:
    stats = info.grad.stats if info.grad is not None else None
    return stats is not None and stats.min == 0 and stats.max == 0


def grad_changes(before: dict[str, TensorInfo], after: dict[str, TensorInfo],
                 skipped: Collection[str] = ()) -> list[GradChange]:
    """The tensors whose .grad differs between two tables (a leaf's, or a retained one's), but
    those named in `skipped` (shown already: a backward call wrote them).

    A name bound to another tensor object starts afresh: its grad is new, not accumulated.
    A new name for a tensor already listed (`c = x`) compares with that tensor's grad."""
    changes = []
    by_object = {info.object: info for info in before.values() if info.object is not None}
    for name, info in after.items():
        if name in skipped:
            continue
        old = before.get(name)
        if (old is None or old.object != info.object) and info.object is not None:
            old = by_object.get(info.object)
        old_grad = old.grad if old is not None and old.object == info.object else None
        if old_grad == info.grad:
            continue
        after_text = values_preview(info.grad) if info.grad is not None else None
        before_text = values_preview(old_grad) if old_grad is not None else None
        if info.grad is None:
            kind = "cleared"
        elif old_grad is None:
            kind = "fresh"
        elif _is_zero(info):
            kind = "zeroed"
        else:
            kind = "accumulated"
        changes.append(GradChange(name, before_text, after_text, kind))
    return changes


class BackwardLog(VerticalScroll):
    DEFAULT_CSS = """
    BackwardLog { padding: 0 1; }
    BackwardLog > .empty { color: $text-muted; }
    BackwardLog > .entry { margin-bottom: 1; }
    BackwardLog BackwardEntry:focus { background: $boost; }
    BackwardLog > .between { color: $text-muted; margin-bottom: 1; }
    BackwardLog > .separator { color: $warning; margin-bottom: 1; }
    """
    BINDINGS = [
        Binding("up", "step(-1)", "Previous", show=False),
        Binding("down", "step(1)", "Next", show=False),
        Binding("tab", "leave(1)", "Next pane", show=False),
        Binding("shift+tab", "leave(-1)", "Previous pane", show=False),
    ]

    EventWanted: TypeAlias = EntryEventWanted  # posted by an entry: on_backward_log_event_wanted

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Backward log"
        self.can_focus = True
        self.entries = 0

    def compose(self):
        yield Static("Each backward call gets an entry here: its root, the graph it ran through, and each .grad it wrote.", classes="empty")

    def action_leave(self, direction: int) -> None:
        """Tab / Shift+Tab go to the next / previous pane, past the entries (Up / Down walk them)."""
        chain = self.screen.focus_chain
        inside = [i for i, widget in enumerate(chain) if widget is self or self in widget.ancestors]
        if not inside or len(inside) == len(chain):
            return
        index = inside[-1] + 1 if direction > 0 else inside[0] - 1
        self.screen.set_focus(chain[index % len(chain)])

    def add_cell(
        self,
        execution_count: int | None,
        events: tuple[BackwardEvent, ...],
        before: dict[str, TensorInfo],
        after: dict[str, TensorInfo],
    ) -> None:
        """Log a cell's backward calls (a group of calls alike as one entry), then any other
        grads that changed in it."""
        groups = call_groups(events)
        numbered = sum(group.count for group in groups) > 1
        previous = 0
        for group in groups:
            head = group.head
            if head is None:  # calls only counted (between the first and the last described)
                self._mount_entry(Static(Text(prompt(execution_count) + group_header(group)), classes="entry"))
                previous = group.last_step
                continue
            between = between_text(previous, head) if numbered and head.step else None
            if between:
                self._mount_entry(Static(Text(between), classes="between"), counts=False)
            if group.is_single:
                self._mount_entry(BackwardEntry(call_text(execution_count, head, numbered),
                                                replace(head, cell=execution_count)))
            else:
                self._mount_entry(BackwardGroup(execution_count, group))
            previous = group.last_step
        traced = {leaf.name for event in events for leaf in event.leaves}
        changes = grad_changes(before, after, traced)
        if changes:
            self._add_changes(execution_count, changes)

    def _add_changes(self, execution_count: int | None, changes: list[GradChange]) -> None:
        text = Text()
        text.append(f"In [{execution_count if execution_count is not None else ' '}]", style="bold green")
        text.append(f"  {len(changes)} grad{'s' if len(changes) != 1 else ''} changed outside a backward call")
        for change in changes:
            text.append(f"\n{change.name}.grad ", style="bold")
            style = {"fresh": "green", "accumulated": "bold yellow", "zeroed": "cyan", "cleared": "red"}[change.kind]
            text.append(change.kind, style=style)
            text.append(f"\n  {change.before if change.before is not None else 'None'}", style="dim")
            text.append(f"\n→ {change.after if change.after is not None else 'None'}")
        self._mount_entry(Static(text, classes="entry"))

    def _mount_entry(self, entry: Static | BackwardGroup, counts: bool = True) -> None:
        for hint in self.query(".empty"):
            hint.remove()
        self.entries += counts
        self.mount(entry)
        self.call_after_refresh(self.scroll_end, animate=False)

    def on_focus(self) -> None:
        entries = list(self.query(BackwardEntry))
        if entries:
            entries[-1].focus()

    def action_step(self, step: int) -> None:
        entries = list(self.query(BackwardEntry))
        if not entries:
            self.scroll_relative(y=step, animate=False)
            return
        focused = self.screen.focused
        at = entries.index(focused) if focused in entries else len(entries)
        target = entries[max(0, min(len(entries) - 1, at + step))]
        target.focus(scroll_visible=False)
        target.scroll_visible(animate=False, top=target.outer_size.height > self.size.height // 2)

    def add_separator(self, label: str) -> None:
        """A rule across the log where the kernel restarted."""
        for hint in self.query(".empty"):
            hint.remove()
        self.mount(Static(LabelledRule(label, style="dim"), classes="separator"))
        self.call_after_refresh(self.scroll_end, animate=False)

    def clear(self) -> None:
        self.remove_children()
        self.entries = 0
