"""The last step of drawing: any text whose colour is below 4.5:1 on its background is made
readable (ui/contrast.py), whatever drew it. Themes, Pygments styles and ANSI names all have
colours that are faint somewhere: dim text on a light panel, a warning yellow on white, a
pane's subtitle in its unfocused border colour, a footer key in catppuccin-latte. One filter
on every line covers them all, the app's own widgets and Textual's alike.

Borders, scrollbars and block glyphs keep their colours (they are not text), and so do
colours the terminal chooses (ANSI names, when the app draws in the terminal's own palette)."""

from __future__ import annotations

from functools import lru_cache

from rich.color import Color as RichColor
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter

from gradrepl.ui.contrast import TEXT_CONTRAST, contrast, readable

DRAWING = range(0x2500, 0x25A0)  # box drawing, block elements: borders and bars


def is_drawing(text: str) -> bool:
    return all(char == " " or ord(char) in DRAWING for char in text)


@lru_cache(4096)
def readable_style(style: Style, background: RichColor) -> Style:
    color, bgcolor = style.color, style.bgcolor or background
    if style.reverse or color is None or color.triplet is None or bgcolor.triplet is None:
        return style
    fg, bg = color.triplet, bgcolor.triplet
    if contrast(fg, bg) >= TEXT_CONTRAST:
        return style
    return style + Style(color=RichColor.from_triplet(ColorTriplet(*readable(fg, bg))))


class ReadableText(LineFilter):
    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        default = background.rich_color
        return [
            segment if style is None or control or is_drawing(text) else Segment(text, readable_style(style, default))
            for segment in segments
            for text, style, control in (segment,)
        ]
