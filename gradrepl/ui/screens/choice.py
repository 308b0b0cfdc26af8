"""A modal question answered by a button or its key: the base of the quit, recover and
kernel-died dialogs."""

from __future__ import annotations

from textual.screen import ModalScreen
from textual.widgets import Button


class ChoiceScreen(ModalScreen[str]):
    """Dismisses with the id of the button pressed, or the choice its key binding names."""

    DEFAULT_CSS = """
    ChoiceScreen { align: center middle; }
    ChoiceScreen > Vertical { height: auto; background: $surface; padding: 1 2; }
    ChoiceScreen Horizontal { height: auto; margin-top: 1; }
    ChoiceScreen Button { margin-right: 2; }
    ChoiceScreen .hint { color: $text-muted; margin-top: 1; width: 100%; }
    """
    FALLBACK = "stay"  # what a button without an id means

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose(event.button.id or self.FALLBACK)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
