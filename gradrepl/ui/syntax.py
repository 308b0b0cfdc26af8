"""Syntax colours that follow the app theme: a dark theme's on dark backgrounds, a light
theme's on light ones, in the transcript (Rich Syntax) and in the code input (TextArea)."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from textual.widgets.text_area import TextAreaTheme

DARK_SYNTAX = "monokai"  # Pygments styles, for Rich Syntax
LIGHT_SYNTAX = "default"
DARK_INPUT = "css"  # TextArea themes: "css" takes background and cursor from the app theme
LIGHT_INPUT = "gradrepl-light"


def pygments_style(dark: bool) -> str:
    return DARK_SYNTAX if dark else LIGHT_SYNTAX


def light_input_theme() -> TextAreaTheme:
    """The app theme's background and cursor (as "css"), with GitHub light's token colours."""
    github = TextAreaTheme.get_builtin_theme("github_light")
    return TextAreaTheme(name=LIGHT_INPUT, syntax_styles=dict(github.syntax_styles) if github else {})


class ThemedSource:
    """Source highlighted in the colours of the theme current when it is drawn, so a change
    of theme recolours what is already on screen. `make` builds the Syntax for a style."""

    def __init__(self, make: Callable[[str], Syntax], *, dark: Callable[[], bool]) -> None:
        self.make = make
        self.dark = dark

    @property
    def style_name(self) -> str:
        return pygments_style(self.dark())

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # No background of its own: the pane's shows through, whatever the terminal's is.
        for segment in console.render(self.make(self.style_name), options):
            style = segment.style
            if style is not None and style.bgcolor is not None:
                style = style.without_color + Style(color=style.color)
            yield Segment(segment.text, style, segment.control)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.make(self.style_name))
