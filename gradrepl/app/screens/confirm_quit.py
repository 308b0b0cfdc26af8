"""Quitting with unsaved cells: save, discard or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmQuitScreen(ModalScreen[str]):
    """Dismisses with "save", "quit" or "stay"."""

    BINDINGS = [
        Binding("escape", "choose('stay')", "Stay"),
        Binding("s", "choose('save')", "Save"),
        Binding("d", "choose('quit')", "Discard"),
    ]
    DEFAULT_CSS = """
    ConfirmQuitScreen { align: center middle; }
    ConfirmQuitScreen > Vertical {
        width: 64; height: auto; border: round $warning; background: $surface; padding: 1 2;
    }
    ConfirmQuitScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmQuitScreen Button { margin-right: 2; }
    ConfirmQuitScreen .hint { color: $text-muted; margin-top: 1; }
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

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "stay")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
