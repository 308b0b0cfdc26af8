"""Restarting the kernel while it holds named tensors: restart or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label

from gradrepl.ui.screens.choice import ChoiceScreen


class ConfirmRestartScreen(ChoiceScreen):
    """Dismisses with "restart" or "stay". No letter keys: typing code cannot answer it."""

    BINDINGS = [Binding("escape", "choose('stay')", "Stay")]
    DEFAULT_CSS = """
    ConfirmRestartScreen > Vertical { width: 64; max-width: 95%; border: round $warning; }
    ConfirmRestartScreen Label { width: 100%; }
    """

    def __init__(self, tensors: int, why: str = "") -> None:
        super().__init__()
        self.tensors = tensors
        self.why = why  # " to turn the sandbox on"

    def compose(self) -> ComposeResult:
        named = f"{self.tensors} named tensor{'s' if self.tensors != 1 else ''}"
        with Vertical():
            yield Label(f"Restart the kernel{self.why}? Its {named} and every other name go with it.")
            with Horizontal():
                yield Button("Restart", id="restart", variant="warning")
                yield Button("Stay", id="stay", variant="primary")
            yield Label("Enter presses the focused button, Tab moves between them; Escape stays.", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()
