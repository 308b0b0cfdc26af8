"""The status line: kernel state, cells run, script path, unsaved marker."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

STATE_STYLES = {
    "starting": "bold yellow",
    "idle": "bold green",
    "busy": "bold magenta",
    "dead": "bold white on red",
    "restarting": "bold yellow",
}


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    kernel_state: reactive[str] = reactive("starting")
    kernel_reason: reactive[str] = reactive("")
    cells_run: reactive[int] = reactive(0)
    progress: reactive[str] = reactive("")
    path: reactive[str] = reactive("")
    unsaved: reactive[int] = reactive(0)

    def render(self) -> Text:
        text = Text()
        text.append(" kernel ")
        text.append(f" {self.kernel_state} ", style=STATE_STYLES.get(self.kernel_state, "bold"))
        if self.kernel_reason:
            text.append(f" {self.kernel_reason}", style="italic")
        text.append(f"  │  {self.cells_run} cell{'s' if self.cells_run != 1 else ''} run")
        if self.progress:
            text.append(f"  │  {self.progress}", style="bold")
        text.append(f"  │  {self.path or 'no file'}")
        if self.unsaved:
            text.append(f"  ● {self.unsaved} unsaved", style="bold yellow")
        return text
