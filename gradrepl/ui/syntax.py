"""Syntax colours that follow the app theme: a dark theme's on dark backgrounds, a light
theme's on light ones, in the transcript (Rich Syntax) and in the code input (TextArea)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text
from textual.widgets.text_area import TextAreaTheme

from gradrepl.ui.contrast import readable
from gradrepl.ui.hanging import hang_wrapped

DARK_SYNTAX = "monokai"  # Pygments styles, for Rich Syntax
LIGHT_SYNTAX = "default"
DARK_INPUT = "css"  # TextArea themes: "css" takes background and cursor from the app theme
LIGHT_INPUT = "gradrepl-light"


def pygments_style(dark: bool) -> str:
    return DARK_SYNTAX if dark else LIGHT_SYNTAX


def light_input_theme() -> TextAreaTheme:
    """The app theme's background and cursor (as "css"), with GitHub light's token colours
    darkened where they are faint on a light background (its names and True/None are),
    also on the cursor's line."""
    github = TextAreaTheme.get_builtin_theme("github_light")
    styles = {token: _readable_on_light(style) for token, style in (github.syntax_styles if github else {}).items()}
    return TextAreaTheme(name=LIGHT_INPUT, syntax_styles=styles)


LIGHT_LINE = (216, 216, 216)  # the darkest background input text has in a light theme: the cursor's line


def _readable_on_light(style: Style) -> Style:
    color = style.color
    if color is None:
        return style
    red, green, blue = readable(color.get_truecolor(), LIGHT_LINE)
    return style + Style(color=Color.from_rgb(red, green, blue))


class ThemedSource:
    """Source highlighted in the colours of the theme current when it is drawn, so a change
    of theme recolours what is already on screen. `make` builds the Syntax for a style."""

    def __init__(self, make: Callable[[str], RenderableType], *, dark: Callable[[], bool]) -> None:
        self.make = make
        self.dark = dark
        # Each layout renders and measures again; highlighting a long cell costs seconds, so the
        # last result is kept for the style and width it was made for.
        self._drawn: tuple[tuple[str, int], list[Segment]] | None = None
        self._measured: tuple[tuple[str, int], Measurement] | None = None

    @property
    def style_name(self) -> str:
        return pygments_style(self.dark())

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        key = (self.style_name, options.max_width)
        if self._drawn is None or self._drawn[0] != key:
            self._drawn = key, list(self._segments(console, options))
        yield from self._drawn[1]

    def _segments(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        # No background of its own: the pane's shows through, whatever the terminal's is.
        for segment in console.render(self.make(self.style_name), options):
            style = segment.style
            if style is not None and style.bgcolor is not None:
                style = style.without_color + Style(color=style.color)
            yield Segment(segment.text, style, segment.control)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        key = (self.style_name, options.max_width)
        if self._measured is None or self._measured[0] != key:
            self._measured = key, Measurement.get(console, options, self.make(self.style_name))
        return self._measured[1]


CONTINUED = "↪ "  # starts a source line's wrapped part


class WrappedSource:
    """Highlighted source whose long lines wrap under their own indentation, after a `↪`, so a
    wrapped part never looks like a line of its own at a lesser indent (Rich wraps to column 0)."""

    def __init__(self, syntax: Syntax) -> None:
        self.syntax = syntax

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 8)
        highlighted = self.syntax.highlight(self.syntax.code)
        highlighted.rstrip()
        for line in highlighted.split("\n", allow_blank=True):
            yield from hang_wrapped(console, line, width, hang=0, marker=Text(CONTINUED, style="dim"))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((len(line) for line in self.syntax.code.splitlines()), default=0)
        return Measurement(min(longest, options.max_width), options.max_width)
