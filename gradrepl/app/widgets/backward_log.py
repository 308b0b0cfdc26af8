"""The backward log: per cell, which tensors' .grad changed, from what to what.

Until the probe traces backward calls themselves, entries come from comparing the tensor
table before and after each cell: a grad that appears is fresh, one that was there and
changed was accumulated into (or overwritten).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from gradrepl.app.formatting import values_text
from gradrepl.kernel.events import TensorInfo


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

    A name bound to another tensor object starts afresh: its grad is new, not accumulated."""
    changes = []
    for name, info in after.items():
        old = before.get(name)
        same_object = old is not None and old.object == info.object
        old_grad = old.grad if same_object and old is not None else None
        if old_grad == info.grad:
            continue
        after_text = values_text(info.grad) if info.grad is not None else None
        before_text = values_text(old_grad) if old_grad is not None else None
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
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Backward log"
        self.can_focus = True
        self.entries = 0

    def compose(self):
        yield Static("Each cell that changes a .grad gets an entry here.", classes="empty")

    def add_entry(self, execution_count: int | None, before: dict[str, TensorInfo], after: dict[str, TensorInfo]) -> None:
        """Log the grads that changed between the tables before and after a cell, if any."""
        changes = grad_changes(before, after)
        if not changes:
            return
        for hint in self.query(".empty"):
            hint.remove()
        self.entries += 1
        text = Text()
        text.append(f"In [{execution_count if execution_count is not None else ' '}]", style="bold green")
        text.append(f"  {len(changes)} grad{'s' if len(changes) != 1 else ''} changed")
        for change in changes:
            text.append(f"\n{change.name}.grad ", style="bold")
            style = {"fresh": "green", "accumulated": "bold yellow", "zeroed": "cyan", "cleared": "red"}[change.kind]
            text.append(change.kind, style=style)
            text.append(f"\n  {change.before if change.before is not None else 'None'}", style="dim")
            text.append(f"\n→ {change.after if change.after is not None else 'None'}")
        self.mount(Static(text, classes="entry"))
        self.call_after_refresh(self.scroll_end, animate=False)

    def clear(self) -> None:
        self.remove_children()
        self.entries = 0
