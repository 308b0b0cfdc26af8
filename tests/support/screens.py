"""Reading what the app's screens show, for pilot tests with or without a kernel."""

from __future__ import annotations

import io

from rich.console import Console, RenderableType
from textual.app import App
from textual.pilot import Pilot

from gradrepl.ui.screens.autograd_graph import AutogradGraphScreen
from gradrepl.ui.widgets.graph_view import GraphView


def tree_labels(screen: AutogradGraphScreen) -> list[str]:
    """Every row of the graph tree, folded or not, in the order it is drawn."""
    return [row.text for row in screen.query_one(GraphView).rows]


def shown_labels(screen: AutogradGraphScreen) -> list[str]:
    """The rows of the graph tree not folded away, without their guides and arrows."""
    view = screen.query_one(GraphView)
    return [view.rows[index].text for index in view.shown]


def rendered(renderable: RenderableType, width: int = 130) -> str:
    """A Rich renderable as the plain text a terminal of `width` columns shows."""
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


async def layout_settled(pilot: Pilot, rounds: int = 20) -> None:
    """Let the app refresh until the scrolling panes keep their size and position for
    two refreshes: a transcript that follows its output scrolls after the layout its output caused."""
    app = pilot.app

    def shape() -> list[object]:
        return [(w.id, w.virtual_size, w.scroll_offset, w.size) for w in app.screen.query("#transcript, #backward-log, #inspector")]

    before, steady = shape(), 0
    for _ in range(rounds):
        await pilot.pause()
        now = shape()
        steady = steady + 1 if now == before else 0
        if steady == 2:  # two refreshes alike: a slow machine's late scroll has come by then
            return
        before = now


def faint_text(app: App[object], minimum: float = 4.5) -> dict[str, float]:
    """Text drawn on the app's screen now below `minimum` contrast on its background, each
    with its ratio: the colours the terminal gets, after Textual's ANSI and dim handling and
    gradrepl's own filter. Borders, bars and other drawing glyphs are not text."""
    from gradrepl.ui.contrast import contrast

    drawing = range(0x2500, 0x25A0)
    faint: dict[str, float] = {}
    for strip in app.screen._compositor.render_strips():
        for segment in strip:
            text, style = segment.text.strip(), segment.style
            if not text or style is None or style.color is None or style.bgcolor is None:
                continue
            if all(char == " " or ord(char) in drawing for char in text):
                continue
            fg, bg = style.color.get_truecolor(), style.bgcolor.get_truecolor()
            if style.reverse:
                fg, bg = bg, fg
            ratio = contrast(fg, bg)
            if ratio < minimum:
                faint[text] = round(ratio, 2)
    return faint
