"""Ask where to save the session's cells."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from gradrepl.ui.widgets.path_input import PathInput


class SaveAsScreen(ModalScreen["Path | None"]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    SaveAsScreen { align: center middle; }
    SaveAsScreen > Vertical {
        width: 70; height: auto; border: round $accent; background: $surface; padding: 1 2;
    }
    SaveAsScreen Label.error { color: $error; }
    SaveAsScreen #folder { color: $text-muted; }
    """

    def __init__(self, suggestion: Path, current: Path | None = None) -> None:
        super().__init__()
        self.suggestion = suggestion
        self.current = current
        self._overwrite: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Save the session's cells as a # %% script:")
            yield Label(f"in {Path.cwd()} (a relative name is from there)", id="folder", markup=False)
            yield PathInput(str(self.suggestion), id="path")
            yield Label("Enter saves, Escape cancels.", id="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        hint = self.query_one("#hint", Label)
        if not text:
            hint.update("A file name is needed.")
            hint.add_class("error")
            return
        path = Path(text).expanduser()
        if path.is_dir():
            hint.update(f"{text} is a folder: add a file name.")
            hint.add_class("error")
            return
        if path.exists() and path != self.current and path != self._overwrite:
            self._overwrite = path
            hint.update(f"{text} exists: Enter again replaces it, Escape cancels.")
            hint.add_class("error")
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
