"""One traced backward call in the backward log: its text (`call_text`), and the entry that
opens it in full (Enter or a click)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import RenderResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static

from gradrepl.protocol import BackwardEvent
from gradrepl.render.text import (
    backward_call,
    backward_path,
    counted,
    failure_text,
    grad_kind,
    hook_text,
    leaves_shown,
    norm_text,
    returned_text,
    values_preview,
    vjp_lines,
)
from gradrepl.ui.hanging import HangingText

ERROR_SHOWN = 120  # characters of a failed call's error in its entry (the detail has it all)


@dataclass
class EventWanted(Message, namespace="backward_log"):
    """A call's entry asks for its detail (the app opens BackwardEventScreen)."""

    event: BackwardEvent


def prompt(execution_count: int | None) -> str:
    return f"In [{execution_count if execution_count is not None else ' '}] "


def short_error(error: str) -> str:
    """A failed call's error, to the end of its first phrase (torch's messages run on): the
    transcript and the call's detail show it whole."""
    line = error.splitlines()[0] if error else "?"
    ends = [at for at in (line.find(" (", 20), line.find(". ", 20)) if at > 0]
    if ends:
        line = line[:min(ends)] + " …"
    return line if len(line) <= ERROR_SHOWN else line[:ERROR_SHOWN - 1] + "…"


def call_text(execution_count: int | None, event: BackwardEvent, numbered: bool) -> Text:
    """A call's entry: the call, the nodes it ran, each grad it wrote (old and new), its hooks' effects."""
    text = Text()
    text.append(prompt(execution_count), style="bold green")
    if numbered and event.step:
        text.append(f"step {event.step:,} ", style="green")
    text.append(backward_call(event), style="bold")
    if event.error:
        reached = failure_text(event, 8).split(", then ")[0] if event.nodes and event.node_order == "exact" else None
        if reached:
            text.append(f"\n  {reached}", style="dim")
        text.append(f"\n  failed: {short_error(event.error)}", style="bold red")
    else:
        if event.nodes:
            text.append(f"\n  via {backward_path(event, 8)}", style="dim")
        if event.kind == "grad":
            text.append(f"\n  returned {returned_text(event)}")
    shown, rest = leaves_shown(event.leaves)
    for leaf in shown:
        kind = grad_kind(leaf)
        text.append(f"\n{leaf.name}.grad ", style="bold")
        if leaf.retained:
            text.append("(retained) ", style="cyan")
        text.append(kind, style="bold yellow" if kind == "accumulated" else "green")
        if event.brief and leaf.after is None:
            text.append(f"  norm {norm_text(leaf.norm)}", style="dim")
            continue
        if not event.brief:
            text.append(f"\n  {values_preview(leaf.before)}", style="dim")
        text.append(f"\n→ {values_preview(leaf.after)}")
    if rest:
        text.append(f"\n{rest}", style="dim")
        text.append("\n  Enter: every grad", style="dim")
    if not event.error and event.kind != "grad" and not event.leaves:
        text.append("\n  no .grad changed", style="dim")
    for hook in event.hooks:
        text.append(f"\n{hook_text(hook)}", style="magenta")
    for line in vjp_lines(event, detail=False):
        text.append(f"\n{line}", style="cyan")
    if event.jacobian is not None and not event.jacobian.note:
        text.append("\n  Enter: J, v and vᵀ·J", style="dim")
    return text


def member_text(event: BackwardEvent) -> Text:
    """A call of a group, in one line: step, norm, what it wrote (the group says the rest)."""
    text = Text()
    text.append(f"step {event.step:,}", style="green")
    if event.error:
        text.append(f"  failed: {short_error(event.error)}", style="bold red")
        return text
    if event.norm is not None:
        text.append(f"  norm {norm_text(event.norm)}")
    if event.kind == "grad":
        text.append(f"  returned {counted(len(event.grads or ()), 'grad')}", style="dim")
    elif event.leaves:
        kinds = sorted({grad_kind(leaf) for leaf in event.leaves})
        text.append(f"  {counted(len(event.leaves), 'grad')} {' and '.join(kinds)}", style="dim")
    else:
        text.append("  no .grad changed", style="dim")
    return text


class BackwardEntry(Static):
    """One traced call; Enter (or a click) opens it in full."""

    can_focus = True
    BINDINGS = [Binding("enter", "open", "Open", show=False)]

    def __init__(self, text: Text, event: BackwardEvent, classes: str = "entry") -> None:
        super().__init__(text, classes=classes)
        self.event = event
        self._hanging: HangingText | None = None

    def render(self) -> RenderResult:
        content = self.content
        if not isinstance(content, Text):
            return super().render()
        if self._hanging is None or self._hanging.text is not content:
            self._hanging = HangingText(content)
        return self._hanging

    def action_open(self) -> None:
        self.post_message(EventWanted(self.event))

    def on_click(self) -> None:
        self.action_open()
