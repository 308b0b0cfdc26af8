"""Offered at start-up, above the input: the unsaved cells of a session that ended without
quitting. It is not a dialog: the input keeps the focus, so keys typed while it appears
land there; a choice takes a click, or Shift+Tab to its buttons and Enter."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Static

from gradrepl.render.text import counted
from gradrepl.ui.state.journal import LeftOver

PREVIEW_CELLS = 3
Choice = Literal["run", "discard", "later"]


def describe(left: LeftOver, older: int = 0) -> str:
    count = len(left.cells)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(left.started))
    session = f"A session on {left.script}" if left.script else "A fresh session"
    others = f" (and {counted(older, 'older one')}, offered after this one)" if older else ""
    return (
        f"{session}, started {when}, ended without quitting{others}. "
        f"It ran {counted(count, 'cell')} that {'were' if count != 1 else 'was'} never saved:"
    )


def preview(left: LeftOver) -> str:
    lines = []
    for source in left.cells[:PREVIEW_CELLS]:
        first, *rest = source.strip().splitlines() or [""]
        more = f"  (+{len(rest)} line{'s' if len(rest) != 1 else ''})" if rest else ""
        lines.append("› " + first + more)
    if len(left.cells) > PREVIEW_CELLS:
        lines.append(f"  … and {len(left.cells) - PREVIEW_CELLS} more")
    return "\n".join(lines)


class RecoverOffer(Vertical):
    """Posts RecoverOffer.Chosen; the app acts on it and removes the offer."""

    BINDINGS = [
        Binding("escape", "choose('later')", "Later", show=False),
        Binding("left", "app.focus_previous", show=False),
        Binding("right", "app.focus_next", show=False),
    ]
    DEFAULT_CSS = """
    RecoverOffer {
        height: auto; max-height: 14; border: round $warning; border-title-color: $warning;
        padding: 0 1;
    }
    RecoverOffer .cells { color: $text-muted; }
    RecoverOffer Horizontal { height: auto; }
    RecoverOffer Button { margin-right: 2; min-width: 10; height: 1; border: none; }
    RecoverOffer .hint { color: $text-muted; }
    """

    @dataclass
    class Chosen(Message):
        offer: RecoverOffer
        choice: Choice

        @property
        def control(self) -> RecoverOffer:
            return self.offer

    def __init__(self, left: LeftOver, *, older: int = 0, id: str | None = None) -> None:
        super().__init__(id=id)
        self.left = left
        self.older = older
        self.border_title = "Unsaved cells from last time"

    def compose(self) -> ComposeResult:
        yield Static(describe(self.left, self.older), markup=False)
        yield Static(preview(self.left), classes="cells", markup=False)
        with Horizontal():
            yield Button("Run them again here", id="recover-run", variant="primary", compact=True)
            yield Button("Discard them", id="recover-discard", variant="error", compact=True)
            yield Button("Later", id="recover-later", compact=True)
        yield Static(
            "Click a choice, or Shift+Tab to it and Enter. Nothing is discarded until you choose; "
            "Later (or Escape here) offers them again next time.",
            classes="hint",
        )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        choice = (event.button.id or "recover-later").removeprefix("recover-")
        if choice in ("run", "discard", "later"):
            self.post_message(self.Chosen(self, choice))  # type: ignore[arg-type]

    def action_choose(self, choice: Choice) -> None:
        self.post_message(self.Chosen(self, choice))
