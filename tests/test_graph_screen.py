"""The graph screens with no kernel and no torch: a 1,000-step recurrence (its run folded, opened
with Enter) and a leaf's list of the graphs that use it, played back from the `recurrence`
recording (tests/data/reports, made by scripts/record-reports)."""

from __future__ import annotations

from textual.containers import Vertical
from textual.pilot import Pilot
from textual.widgets import OptionList

from gradrepl.ui.app import GradReplApp
from gradrepl.ui.screens.autograd_graph import AutogradGraphScreen
from gradrepl.ui.screens.leaf_users import LeafUsersScreen
from gradrepl.ui.widgets.inspector import TensorInspector
from support.recorded_app import kernel_free, recorded_app, run_cell, until_shown
from support.recorder import RECURRENCE
from support.screens import shown_labels, tree_labels

SIZE = (120, 40)


async def open_graph(pilot: Pilot, name: str) -> None:
    """Run the recorded cell, then g on `name` in the inspector, until its screen has its graph."""
    await run_cell(pilot, RECURRENCE)
    inspector = pilot.app.query_one(TensorInspector)
    await pilot.press("f2")
    inspector.move_cursor(row=list(inspector.tensors).index(name))
    await pilot.press("g")
    await until_shown(pilot, lambda: getattr(pilot.app.screen, "graph", None) is not None, f"the graph of {name} came")


async def test_a_recurrence_opens_as_one_folded_run_then_its_first_and_last_iteration() -> None:
    app = recorded_app("recurrence")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await open_graph(pilot, "h")
            screen = app.screen
            assert isinstance(screen, AutogradGraphScreen)
            assert shown_labels(screen) == [
                "#0 × 1,000 AddBackward0 → MulBackward0  (2,000 nodes)",
                "#5 AccumulateGrad → x (leaf, 3 float32)",
            ]
            await pilot.press("enter")  # the cursor starts on the first row: the run opens
            await pilot.pause()
            assert shown_labels(screen) == [
                "#0 × 1,000 AddBackward0 → MulBackward0  (2,000 nodes)",
                "#1 AddBackward0 (alpha=1) → h  [1 input without grad]",
                "#2 MulBackward0  [1 input without grad]",
                "saved other: scalar float64",
                "… 998 iterations alike between the first and the last (1,996 nodes)",
                "#3 AddBackward0 (alpha=1)  [1 input without grad]",
                "#4 MulBackward0  [1 input without grad]",
                "saved other: scalar float64",
                "#5 AccumulateGrad → x (leaf, 3 float32)",
            ]
            # Sized to what it shows: the title, 9 rows and the border, not 90% of the screen.
            assert screen.query_one(Vertical).outer_size.height == 1 + 9 + 2


async def test_a_leaf_lists_the_graphs_that_use_it_and_opens_one() -> None:
    app = recorded_app("recurrence")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await open_graph(pilot, "x")
            await until_shown(pilot, lambda: isinstance(app.screen, LeafUsersScreen), "the leaf's screen")
            screen = app.screen
            assert isinstance(screen, LeafUsersScreen)
            users = screen.query_one(OptionList)
            assert [users.get_option_at_index(i).id for i in range(users.option_count)] == ["h", "y"]
            assert screen.query_one(Vertical).outer_size.height <= 8  # a few lines, not a 35-line window
            await pilot.press("down", "enter")
            await until_shown(pilot, lambda: isinstance(app.screen, AutogradGraphScreen) and app.screen.graph is not None,
                              "the graph of y")
            graph_screen = app.screen
            assert isinstance(graph_screen, AutogradGraphScreen) and graph_screen.tensor_name == "y"
            assert tree_labels(graph_screen)[-1] == "#2 AccumulateGrad → x (leaf, 3 float32)"
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is screen  # back to the list
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app, GradReplApp) and len(app.screen_stack) == 1
