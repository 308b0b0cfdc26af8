"""The status line: kernel state (sandboxed, or the server it runs on with the round trip to it),
cells run, script path, unsaved marker."""

from __future__ import annotations

from rich.text import Text
from textual.color import Color
from textual.reactive import reactive
from textual.widgets import Static

from gradrepl.ui.contrast import on, readable

STATE_COLOURS = {  # the theme colour each kernel state is shown in
    "starting": "warning",
    "idle": "success",
    "busy": "accent",
    "dead": "error",
    "restarting": "warning",
}


def theme_styles(variables: dict[str, str]) -> dict[str, str]:
    """Rich styles for the kernel states and the unsaved count in the theme's colours, each
    readable on the status line's background ($panel); "dead" is a badge."""
    panel = Color.parse(variables["panel"]).rgb

    def text(name: str) -> str:
        return "bold " + Color(*readable(Color.parse(variables[name]).rgb, panel)).hex

    styles = {state: text(colour) for state, colour in STATE_COLOURS.items()}
    error = Color.parse(variables["error"]).rgb
    styles["dead"] = f"bold {Color(*on(error)).hex} on {Color(*error).hex}"
    styles["unsaved"] = text("warning")
    return styles


REASON_KEPT = 24  # columns of a dead kernel's reason kept before the path is shortened


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    kernel_state: reactive[str] = reactive("starting")
    kernel_reason: reactive[str] = reactive("")
    link: reactive[str] = reactive("")  # a kernel on a server: "on host:port 12 ms"
    sandboxed: reactive[bool] = reactive(False)  # the kernel runs under --sandbox
    cells_run: reactive[int] = reactive(0)
    progress: reactive[str] = reactive("")
    path: reactive[str] = reactive("")
    unsaved: reactive[int] = reactive(0)
    _styled_for: str | None = None
    _theme_styles: dict[str, str] = {}  # replaced whole, never changed in place

    def render(self) -> Text:
        """One row, whatever the width: a long path loses its leading folders first ("…/name.py"),
        then a long reason its end; the kernel state and the unsaved count always show."""
        cells = f"{self.cells_run} cell{'s' if self.cells_run != 1 else ''} run"
        unsaved = f"  ● {self.unsaved} unsaved" if self.unsaved else ""
        link = f" {self.link}" if self.link else " sandboxed" if self.sandboxed else ""
        fixed = len(" kernel ") + len(self.kernel_state) + 2 + len(link) + len(f"  │  {cells}") + len("  │  ") + len(unsaved)
        if self.progress:
            fixed += len(f"  │  {self.progress}")
        room = max(self.content_size.width, 1) - fixed
        path = self.path or "no file"
        reason = f" {self.kernel_reason}" if self.kernel_reason else ""
        name = path.rsplit("/", 1)[-1] if self.path else path
        path = _fit_path(path, max(room - min(len(reason), REASON_KEPT), min(len(name), room), 4))
        reason = _fit_right(reason, max(room - len(path), 0))
        styles = self._styles()
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" kernel ")
        text.append(f" {self.kernel_state} ", style=styles.get(self.kernel_state, "bold"))
        if link:
            text.append(link, style="dim")
        if reason:
            text.append(reason, style="italic")
        text.append(f"  │  {cells}")
        if self.progress:
            text.append(f"  │  {self.progress}", style="bold")
        text.append(f"  │  {path}")
        if unsaved:
            text.append(unsaved, style=styles["unsaved"])
        return text

    def _styles(self) -> dict[str, str]:
        theme = self.app.theme
        if self._styled_for != theme:
            self._theme_styles, self._styled_for = theme_styles(self.app.theme_variables), theme
        return self._theme_styles


def _fit_path(path: str, width: int) -> str:
    """`path` in `width` columns, losing its leading folders ("…/lessons/one.py"); the file
    name is cut (at its start) only when it alone is wider."""
    if len(path) <= width:
        return path
    name = path.rpartition("/")[2]
    if len(name) >= width - 1:
        return name if len(name) <= width else "…" + name[len(name) - width + 1:] if width > 1 else name[:width]
    return "…" + path[len(path) - width + 1:]


def _fit_right(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…" if width > 1 else ""
