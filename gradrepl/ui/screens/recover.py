"""Offered at start-up: the unsaved cells of a session that ended without quitting."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from gradrepl.ui.screens.choice import ChoiceScreen
from gradrepl.ui.state.journal import LeftOver

PREVIEW_CELLS = 6


class RecoverScreen(ChoiceScreen):
    """Dismisses with "run" (run them again here), "discard" or "later"."""

    BINDINGS = [
        Binding("escape", "choose('later')", "Later"),
        Binding("r", "choose('run')", "Run again"),
        Binding("d", "choose('discard')", "Discard"),
    ]
    DEFAULT_CSS = """
    RecoverScreen > Vertical { width: 90; max-width: 95%; max-height: 90%; border: round $warning; }
    RecoverScreen .cells { color: $text-muted; margin-top: 1; max-height: 16; }
    RecoverScreen .what { width: 100%; }
    """
    FALLBACK = "later"

    def __init__(self, left: LeftOver) -> None:
        super().__init__()
        self.left = left

    def compose(self) -> ComposeResult:
        count = len(self.left.cells)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.left.started))
        where = f"on {self.left.script}" if self.left.script else "in a fresh session"
        cells = f"{count} cell{'s' if count != 1 else ''}"
        with Vertical():
            yield Static(
                f"A gradrepl session {where}, started {when}, was stopped without quitting. "
                f"It ran {cells} that {'were' if count != 1 else 'was'} never saved:",
                classes="what",
            )
            preview = []
            for source in self.left.cells[:PREVIEW_CELLS]:
                lines = source.strip().splitlines() or [""]
                preview.append("› " + lines[0] + (f"  (+{len(lines) - 1} lines)" if len(lines) > 1 else ""))
            if count > PREVIEW_CELLS:
                preview.append(f"  … and {count - PREVIEW_CELLS} more")
            yield Static("\n".join(preview), classes="cells", markup=False)
            with Horizontal():
                yield Button("Run them again here", id="run", variant="primary")
                yield Button("Discard them", id="discard", variant="error")
                yield Button("Later", id="later")
            yield Static(
                "R runs them again in this session (they become its unsaved cells: Ctrl+S keeps them), "
                "D discards them, Escape asks again next time.",
                classes="hint",
            )
