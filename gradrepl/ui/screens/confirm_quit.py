"""Quitting with unsaved cells: save, discard or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label

from gradrepl.ui.screens.choice import ChoiceScreen


class ConfirmQuitScreen(ChoiceScreen):
    """Dismisses with "save", "quit" or "stay"."""

    BINDINGS = [
        Binding("escape", "choose('stay')", "Stay"),
        Binding("s", "choose('save')", "Save"),
        Binding("d", "choose('quit')", "Discard"),
    ]
    DEFAULT_CSS = """
    ConfirmQuitScreen > Vertical { width: 64; border: round $warning; }
    """

    def __init__(self, unsaved: int) -> None:
        super().__init__()
        self.unsaved = unsaved

    def compose(self) -> ComposeResult:
        with Vertical():
            cells = f"{self.unsaved} cell{'s' if self.unsaved != 1 else ''}"
            yield Label(f"{cells} run in this session {'are' if self.unsaved != 1 else 'is'} not saved.")
            with Horizontal():
                yield Button("Save and quit", id="save", variant="primary")
                yield Button("Discard and quit", id="quit", variant="error")
                yield Button("Stay", id="stay")
            yield Label("S saves and quits, D discards and quits, Escape stays.", classes="hint")
