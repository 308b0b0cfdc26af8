"""The graph screen's tree (widgets.graph_view): drawn with the guides `gradrepl graph` prints
(a chain's next node hangs straight under the node before it), folding, keys, references that
lead to their node, and a 10,000-row graph drawing only the rows on screen. Graphs come from
recordings (tests/data/reports) or are made here, with torch in this process as the oracle."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from textual.app import App
from textual.pilot import Pilot

from gradrepl.inkernel.graph import graph_of
from gradrepl.protocol import Graph
from gradrepl.protocol.graph import GraphNode
from gradrepl.render.graph import graph_text, graph_title
from gradrepl.ui.screens.autograd_graph import AutogradGraphScreen
from gradrepl.ui.widgets.graph_view import FOLDED, OPEN, GraphView
from support.recorded_app import kernel_free, recorded_app, run_cell, until_shown
from support.recorder import RECURRENCE

SIZE = (120, 40)


class GraphApp(App[None]):
    """Only the graph screen, over a graph made in the test."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.graph = graph

    def on_mount(self) -> None:
        self.push_screen(AutogradGraphScreen(self.graph.root, self.load))

    async def load(self, name: str) -> Graph:
        return self.graph


async def graph_view(pilot: Pilot) -> GraphView:
    await until_shown(pilot, lambda: isinstance(pilot.app.screen, AutogradGraphScreen) and pilot.app.screen.graph is not None,
                      "the graph came")
    await pilot.pause()
    return pilot.app.screen.query_one(GraphView)


def without_arrows(line: str) -> str:
    return line.replace(OPEN, "").replace(FOLDED, "")


async def open_recorded_graph(pilot: Pilot, source: str, name: str) -> GraphView:
    from gradrepl.ui.widgets.inspector import TensorInspector

    await run_cell(pilot, source)
    inspector = pilot.app.query_one(TensorInspector)
    await pilot.press("f2")
    inspector.move_cursor(row=list(inspector.tensors).index(name))
    await pilot.press("g")
    await until_shown(pilot, lambda: getattr(pilot.app.screen, "graph", None) is not None, f"the graph of {name} came")
    return pilot.app.screen.query_one(GraphView)


async def test_the_recurrences_run_opened_draws_its_iterations_as_one_chain_as_graph_text_does() -> None:
    app = recorded_app("recurrence")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            view = await open_recorded_graph(pilot, RECURRENCE, "h")
            await pilot.press("enter", "e")
            await pilot.pause()
            assert view.shown_lines() == [
                "▼ #0 × 1,000 AddBackward0 → MulBackward0  (2,000 nodes)",
                "└─ #1 AddBackward0 (alpha=1) → h  [1 input without grad]",
                "   ▼ #2 MulBackward0  [1 input without grad]",
                "   └─ saved other: scalar float64",
                "   … 998 iterations alike between the first and the last (1,996 nodes)",
                "   #3 AddBackward0 (alpha=1)  [1 input without grad]",
                "   ▼ #4 MulBackward0  [1 input without grad]",
                "   └─ saved other: scalar float64",
                "#5 AccumulateGrad → x (leaf, 3 float32)",
            ]
            screen = app.screen
            assert isinstance(screen, AutogradGraphScreen) and screen.graph is not None
            assert [without_arrows(line) for line in view.shown_lines()] == graph_text(screen.graph).splitlines()[1:]


async def test_the_saved_tensor_graph_is_drawn_as_graph_text_draws_it() -> None:
    app = recorded_app("saved_tensor_in_place")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            source = "import torch\nx = torch.ones(3, requires_grad=True)\na = x * 3\nb = (a.sin() * a).sum()\na.add_(1)"
            view = await open_recorded_graph(pilot, source, "b")
            screen = app.screen
            assert isinstance(screen, AutogradGraphScreen) and screen.graph is not None
            lines = view.shown_lines()
            assert lines[:3] == ["#0 SumBackward0 → b", "▼ #1 MulBackward0",
                                 "├─ saved other: 3 float32 (a)  ⚠ modified in place since it was saved (version 1, saved at 0)"]
            title_lines = len(graph_title(screen.graph).splitlines())  # the title and its in-place warning
            assert [without_arrows(line) for line in lines] == graph_text(screen.graph).splitlines()[title_lines:]


def branching_graph() -> Graph:
    """#1 Sin is drawn under #0 and referred to ("drawn above") from under #3 and #4; a run of 5 Muls."""
    x = torch.ones(3, requires_grad=True)
    sin = x.exp().sin()
    r = x * 2 * 3 * 4 * 5 * 6 + sin * sin.cos() + sin
    return graph_of(torch, [("r", r), ("x", x)], "r")


async def test_enter_left_right_e_and_c_fold_and_a_reference_leads_to_its_node_unfolding_what_hides_it() -> None:
    app = GraphApp(branching_graph())
    async with app.run_test(size=SIZE) as pilot:
        view = await graph_view(pilot)
        texts = [view.rows[index].text for index in view.shown]
        assert texts[0] == "#0 AddBackward0 (alpha=1) → r" and "#7 MulBackward0  [1 input without grad]" not in texts  # the run starts folded
        full = len(view.rows)
        assert view.cursor == 0 and view.shown_lines()[0].startswith(OPEN)
        await pilot.press("enter")  # folds #0: its branch (#1, #2 and theirs) hides, the chain's next node stays
        assert view.shown_lines()[:2] == ["▶ #0 AddBackward0 (alpha=1) → r", "▼ #3 AddBackward0 (alpha=1)"]
        await pilot.press("right")
        assert view.shown_lines()[1] == "└─ ▼ #1 SinBackward0"
        await pilot.press("down", "right")  # #1 is open: Right leaves it so
        assert view.cursor_row == 1 and view.shown_lines()[1] == "└─ ▼ #1 SinBackward0"
        await pilot.press("left")  # folds #1
        assert view.shown_lines()[1:3] == ["└─ ▶ #1 SinBackward0", "   ▼ #2 ExpBackward0"]
        await pilot.press("left")  # folded already: goes to the row it hangs under
        assert view.cursor_row == 0
        await pilot.press("e")
        assert len(view.shown) == full and not view.folded
        await pilot.press("c")
        assert all(view.line_text(index).lstrip("├└─│ ").startswith(FOLDED) or not view.rows[index].has_children
                   for index in view.shown)
        assert [view.rows[index].depth for index in view.shown] == [0] * len(view.shown)
        # Unfold #3 and #4 to reach the reference to #1, hidden again under the folded #0.
        three = view.node_row(3)
        assert three is not None
        view.cursor = view.shown.index(three)
        await pilot.press("right", "down", "right")
        ref = next(index for index in view.shown if view.rows[index].text == "#1 SinBackward0 (drawn above)")
        view.cursor = view.shown.index(ref)
        await pilot.press("enter")
        await pilot.pause()
        assert view.cursor_row == view.node_row(1) and 0 not in view.folded
        assert view.shown_lines()[view.cursor] == "└─ ▶ #1 SinBackward0"  # #1's own rows stay folded


async def test_a_click_moves_the_cursor_and_a_click_on_the_arrow_folds() -> None:
    app = GraphApp(branching_graph())
    async with app.run_test(size=SIZE) as pilot:
        view = await graph_view(pilot)
        second = view.shown_lines()[1]
        assert second == "└─ ▼ #1 SinBackward0"
        await pilot.click(view, offset=(10, 1))  # on the label
        assert view.cursor == 1 and view.node_row(1) not in view.folded
        await pilot.click(view, offset=(3, 1))  # on the arrow
        assert view.shown_lines()[1] == "└─ ▶ #1 SinBackward0"


def chain_graph(length: int) -> Graph:
    """A chain of `length` nodes with no repeated runs (as the probe would send none)."""
    nodes = tuple(GraphNode(f"Op{index}Backward0", next=(index + 1,) if index + 1 < length else ()) for index in range(length))
    return Graph("big", (3,), "float32", True, False, nodes, total=length)


@contextmanager
def lines_drawn() -> Iterator[list[int]]:
    """The rows GraphView.render_line drew (as lines of the view), while in the block."""
    drawn: list[int] = []
    render_line = GraphView.render_line

    def counted(self: GraphView, y: int) -> Any:
        drawn.append(y + round(self.scroll_y))
        return render_line(self, y)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GraphView, "render_line", counted)
        yield drawn


async def test_a_10000_node_graph_draws_only_the_rows_on_screen() -> None:
    app = GraphApp(chain_graph(10_000))
    with lines_drawn() as drawn:
        async with app.run_test(size=SIZE) as pilot:
            view = await graph_view(pilot)
            assert len(view.shown) == 10_000
            assert not view.children  # no widget per row
            assert drawn and max(drawn) < SIZE[1]
            before = len(drawn)
            await pilot.press("end")
            await pilot.pause()
            assert view.cursor == 9_999 and view.shown_lines()[-1] == "#9999 Op9999Backward0"
            assert min(drawn[before:]) > 9_000  # the last screenful only
            assert len(drawn) - before < 3 * SIZE[1]
