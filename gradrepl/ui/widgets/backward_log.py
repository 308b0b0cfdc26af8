"""The backward log: one entry per backward call the probe traced (root, gradient, graph
nodes, each .grad it wrote: fresh or accumulated), and, for grads that changed without a
traced call (`x.grad = ...`, `x.grad.zero_()`), an entry from comparing the tensor table
before and after the cell.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.rule import Rule
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from gradrepl.protocol import BackwardEvent, TensorInfo
from gradrepl.render.text import backward_call, backward_path, grad_kind, values_preview, vjp_lines


@dataclass(frozen=True)
class GradChange:
    name: str
    before: str | None  # None: the tensor had no grad
    after: str | None
    kind: str  # fresh | accumulated | zeroed | cleared


def _is_zero(info: TensorInfo) -> bool:
    stats = info.grad.stats if info.grad is not None else None
    return stats is not None and stats.min == 0 and stats.max == 0


def grad_changes(before: dict[str, TensorInfo], after: dict[str, TensorInfo]) -> list[GradChange]:
    """The tensors whose .grad differs between two tables (a leaf's, or a retained one's).

    A name bound to another tensor object starts afresh: its grad is new, not accumulated.
    A new name for a tensor already listed (`c = x`) compares with that tensor's grad."""
    changes = []
    by_object = {info.object: info for info in before.values() if info.object is not None}
    for name, info in after.items():
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


class BackwardEntry(Static):
    """One traced call; Enter (or a click) opens it in full."""

    can_focus = True
    BINDINGS = [Binding("enter", "open", "Open", show=False)]

    def __init__(self, text: Text, event: BackwardEvent) -> None:
        super().__init__(text, classes="entry")
        self.event = event

    def action_open(self) -> None:
        self.post_message(BackwardLog.EventWanted(self.event))

    def on_click(self) -> None:
        self.action_open()


class BackwardLog(VerticalScroll):
    DEFAULT_CSS = """
    BackwardLog { padding: 0 1; }
    BackwardLog > .empty { color: $text-muted; }
    BackwardLog > .entry { margin-bottom: 1; }
    BackwardLog > BackwardEntry:focus { background: $boost; }
    BackwardLog > .separator { color: $warning; margin-bottom: 1; }
    """
    BINDINGS = [
        Binding("up", "step(-1)", "Previous", show=False),
        Binding("down", "step(1)", "Next", show=False),
        Binding("tab", "leave(1)", "Next pane", show=False),
        Binding("shift+tab", "leave(-1)", "Previous pane", show=False),
    ]

    @dataclass
    class EventWanted(Message):
        event: BackwardEvent

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
        """Log a cell's backward calls, then any other grads that changed in it."""
        for event in events:
            self._add_event(execution_count, event)
        traced = {leaf.name for event in events for leaf in event.leaves}
        changes = [c for c in grad_changes(before, after) if c.name not in traced]
        if changes:
            self._add_changes(execution_count, changes)

    def _add_event(self, execution_count: int | None, event: BackwardEvent) -> None:
        text = Text()
        text.append(f"In [{execution_count if execution_count is not None else ' '}] ", style="bold green")
        text.append(backward_call(event), style="bold")
        if event.nodes:
            text.append(f"\n  via {backward_path(event, 8)}", style="dim")
        if event.error:
            text.append(f"\n  failed: {event.error.splitlines()[0]}", style="bold red")
        elif event.kind == "grad":
            text.append("\n  returned " + ", ".join(values_preview(g) for g in event.grads or ()))
        for leaf in event.leaves:
            kind = grad_kind(leaf)
            text.append(f"\n{leaf.name}.grad ", style="bold")
            text.append(kind, style="bold yellow" if kind == "accumulated" else "green")
            text.append(f"\n  {values_preview(leaf.before)}", style="dim")
            text.append(f"\n→ {values_preview(leaf.after)}")
        if not event.error and event.kind != "grad" and not event.leaves:
            text.append("\n  no .grad changed", style="dim")
        for line in vjp_lines(event, detail=False):
            text.append(f"\n{line}", style="cyan")
        if event.jacobian is not None and not event.jacobian.note:
            text.append("\n  Enter: J, v and vᵀ·J", style="dim")
        self._mount_entry(BackwardEntry(text, replace(event, cell=execution_count)))

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

    def _mount_entry(self, entry: Static) -> None:
        for hint in self.query(".empty"):
            hint.remove()
        self.entries += 1
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
        target.focus()
        target.scroll_visible(animate=False)

    def add_separator(self, label: str) -> None:
        """A rule across the log where the kernel restarted."""
        for hint in self.query(".empty"):
            hint.remove()
        self.mount(Static(Rule(label, style="dim"), classes="separator"))
        self.call_after_refresh(self.scroll_end, animate=False)

    def clear(self) -> None:
        self.remove_children()
        self.entries = 0
