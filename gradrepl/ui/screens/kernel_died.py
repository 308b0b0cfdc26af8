"""The kernel died in a cell: what happened, and a way back to where the session was."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from gradrepl.ui.screens.choice import ChoiceScreen


class KernelDiedScreen(ChoiceScreen):
    """Dismisses with "replay" (restart, then run the good cells again), "restart" or "later".
    Its choices are buttons, not letters: code typed as it opens cannot answer it."""

    BINDINGS = [Binding("escape", "choose('later')", "Later")]
    DEFAULT_CSS = """
    KernelDiedScreen > Vertical { width: 90; max-width: 95%; border: round $error; }
    KernelDiedScreen Static { width: 100%; }
    """
    FALLBACK = "later"

    def __init__(self, where: str, reason: str, good_cells: int) -> None:
        super().__init__()
        self.where = where
        self.reason = reason
        self.good_cells = good_cells

    def compose(self) -> ComposeResult:
        cells = f"{self.good_cells} cell{'s' if self.good_cells != 1 else ''}"
        with Vertical():
            yield Static(f"The kernel died in {self.where}: {self.reason}.", classes="what")
            yield Static("Every cell you ran or typed is kept. Its names and tensors are gone with the kernel.")
            with Horizontal():
                label = f"Restart and run {cells} again" if self.good_cells else "Restart and run again (no cell ran)"
                yield Button(label, id="replay", variant="primary", disabled=not self.good_cells)
                yield Button("Fresh kernel", id="restart")
                yield Button("Later", id="later")
            yield Static(
                f"The first button restarts and runs again the {cells} that ran without error before it, "
                "in order, to bring the state back; Fresh kernel starts an empty one; Escape leaves it "
                "dead for now (F8 restarts it later). Tab moves between the buttons, Enter presses one.",
                classes="hint",
            )

    def on_mount(self) -> None:
        self.query_one("#replay" if self.good_cells else "#restart", Button).focus()

    def action_choose(self, choice: str) -> None:
        if choice == "replay" and not self.good_cells:
            return
        self.dismiss(choice)
