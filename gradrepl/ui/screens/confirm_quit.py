"""Quitting with unsaved cells: save, discard or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label

from gradrepl.ui.screens.choice import ChoiceScreen


class ConfirmQuitScreen(ChoiceScreen):
    """Dismisses with "save", "quit" or "stay". No letter keys, and Stay has the focus: code
    typed on after Ctrl+D (`def f(): ...`) cannot discard the cells."""

    BINDINGS = [Binding("escape", "choose('stay')", "Stay")]
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
            yield Label("Enter presses the focused button, Tab moves between them; Escape stays.", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()
