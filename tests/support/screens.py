"""Reading what the app's screens show, for pilot tests with or without a kernel."""

from __future__ import annotations

import io

from rich.console import Console, RenderableType
from textual.pilot import Pilot
from textual.widgets import Tree

from gradrepl.ui.screens.autograd_graph import AutogradGraphScreen


def tree_labels(screen: AutogradGraphScreen) -> list[str]:
    """Every row of the graph tree, folded or not, in the order it is drawn."""
    labels = []
    stack = list(reversed(screen.query_one(Tree).root.children))
    while stack:
        node = stack.pop()
        labels.append(str(node.label))
        stack.extend(reversed(node.children))
    return labels


def rendered(renderable: RenderableType, width: int = 130) -> str:
    """A Rich renderable as the plain text a terminal of `width` columns shows."""
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


async def layout_settled(pilot: Pilot, rounds: int = 20) -> None:
    """Let the app refresh until the scrolling panes keep their size and position for one
    refresh: a transcript that follows its output scrolls after the layout its output caused."""
    app = pilot.app

    def shape() -> list[object]:
        return [(w.id, w.virtual_size, w.scroll_offset, w.size) for w in app.screen.query("#transcript, #backward-log, #inspector")]

    before = shape()
    for _ in range(rounds):
        await pilot.pause()
        now = shape()
        if now == before:
            return
        before = now
