"""The tensor inspector in a small app, no kernel: its columns as wide as what they show now
(not the widest value they ever showed), and at the scale of models (issue 13): changed rows
scrolled into view, the filter, Home/End, modules folded, one row per tensor object, widths
that follow the pane."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.app import App, ComposeResult
from textual.message import Message
from textual.widgets.data_table import ColumnKey

from gradrepl.protocol import TensorInfo, Values
from gradrepl.render.inspector_rows import ModuleRow, TensorRow
from gradrepl.ui.widgets.inspector import CHANGED, TensorInspector
from support.model_tensors import linear, plain, sequential
from support.screens import layout_settled


class InspectorApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TensorInspector(id="inspector")


def tensor(name: str, grad: object) -> TensorInfo:
    return TensorInfo(name, (2,), "float32", "cpu", True, True, None, data=Values((1.0, 2.0)),
                      grad=None if grad is None else Values(grad))


def grad_width(inspector: TensorInspector) -> int:
    return inspector.columns[ColumnKey("grad")].get_render_width(inspector)


@pytest.mark.parametrize("third", ["c", "a"], ids=["other-names-table-rebuilt", "same-names-rows-updated"])
async def test_grad_column_narrows_when_the_wide_grad_is_gone(third: str) -> None:
    async with InspectorApp().run_test(size=(160, 20)) as pilot:
        inspector = pilot.app.query_one(TensorInspector)
        widths = []
        for table in [(tensor("a", (0.5, 1.0)),), (tensor("a", (123456.789, -98765.4321)),), (tensor(third, (0.5, 1.0)),)]:
            inspector.show(table)
            await pilot.pause()
            widths.append(grad_width(inspector))
        narrow, wide, after = widths
        assert wide > narrow
        assert after == narrow


# ---------------------------------------------------------------- at the scale of models (issue 13)

class ShortInspectorApp(App[None]):
    """The inspector 14 lines high (12 rows and its header inside its border), as in the app."""

    CSS = "TensorInspector { height: 14; border: round $panel; }"

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[Message] = []

    def compose(self) -> ComposeResult:
        yield TensorInspector(id="inspector")

    def on_tensor_inspector_detail_wanted(self, event: TensorInspector.DetailWanted) -> None:
        self.posted.append(event)

    def on_tensor_inspector_graph_wanted(self, event: TensorInspector.GraphWanted) -> None:
        self.posted.append(event)


def on_screen(inspector: TensorInspector) -> list[str]:
    """The keys of the rows the pane shows now."""
    header = inspector.header_height if inspector.show_header else 0
    first = round(inspector.scroll_y)
    height = inspector.scrollable_content_region.height - header
    return [row.key for row in inspector.shown_rows[first:first + height]]


def many(count: int) -> tuple[TensorInfo, ...]:
    return tuple(plain(f"t{index}") for index in range(count))


async def test_the_rows_a_cell_changed_are_scrolled_into_view() -> None:
    async with ShortInspectorApp().run_test(size=(120, 30)) as pilot:
        inspector = pilot.app.query_one(TensorInspector)
        table = many(300)
        inspector.show(table, highlight_changes=False)
        await layout_settled(pilot)
        assert on_screen(inspector)[0] == "t0"
        grads = tuple(replace(t, grad=t.data) if t.name in ("t298", "t299") else t for t in table)
        inspector.show(grads)
        await layout_settled(pilot)
        assert inspector.border_subtitle == "300 tensors, 2 changed"
        assert {"t298", "t299"} <= set(on_screen(inspector))
        inspector.show(grads)  # nothing changed: the view stays where the user left it
        await layout_settled(pilot)
        assert {"t298", "t299"} <= set(on_screen(inspector))


async def test_slash_filters_by_name_escape_clears_and_home_end_jump() -> None:
    async with ShortInspectorApp().run_test(size=(120, 30)) as pilot:
        inspector = pilot.app.query_one(TensorInspector)
        inspector.show(many(300), highlight_changes=False)
        inspector.focus()
        await layout_settled(pilot)
        await pilot.press("end")
        assert inspector.cursor_key() == "t299" and "t299" in on_screen(inspector)
        await pilot.press("home")
        assert inspector.cursor_key() == "t0"
        await pilot.press("/", "t", "2", "9")
        assert inspector.filter_text == "t29" and inspector.typing_filter
        assert [row.key for row in inspector.shown_rows] == ["t29", *(f"t{n}" for n in range(290, 300))]
        assert inspector.border_subtitle == "11 of 300 tensors"
        assert "/t29" in str(inspector.border_title)
        await pilot.press("backspace", "enter")  # Enter keeps the filter; keys act on rows again
        assert inspector.filter_text == "t2" and not inspector.typing_filter
        await pilot.press("end")
        assert inspector.cursor_key() == "t299"
        await pilot.press("escape")
        assert inspector.filter_text == "" and inspector.row_count == 300
        assert inspector.border_subtitle == "300 tensors"


async def test_enter_or_space_folds_a_module_and_enter_or_g_on_a_tensor_asks_for_it() -> None:
    app = ShortInspectorApp()
    async with app.run_test(size=(120, 30)) as pilot:
        inspector = app.query_one(TensorInspector)
        inspector.show((*sequential("deep", 100), plain("x")), highlight_changes=False)
        inspector.focus()
        await layout_settled(pilot)
        assert [row.key for row in inspector.shown_rows] == ["\x00module deep", "x"]
        await pilot.press("enter")
        assert inspector.row_count == 102 and inspector.cursor_key() == "\x00module deep"
        await pilot.press("down", "space")
        assert [row.key for row in inspector.shown_rows[1:4]] == ["\x00module deep.0", "deep.0.weight", "deep.0.bias"]
        await pilot.press("down", "enter", "g")
        assert [type(m).__name__ for m in app.posted] == ["DetailWanted", "GraphWanted"]
        assert app.posted[0].tensor.name == "deep.0.weight" and app.posted[1].name == "deep.0.weight"  # type: ignore[attr-defined]
        await pilot.press("home", "g")  # on a module row: no graph, a notice
        assert len(app.posted) == 2
        await pilot.press("enter")
        assert [row.key for row in inspector.shown_rows] == ["\x00module deep", "x"]


async def test_a_folded_module_whose_grads_changed_is_marked_on_its_summary_row() -> None:
    async with ShortInspectorApp().run_test(size=(120, 30)) as pilot:
        inspector = pilot.app.query_one(TensorInspector)
        deep = sequential("deep", 100)
        inspector.show((*deep, plain("x")), highlight_changes=False)
        inspector.show((*sequential("deep", 100, grad=0.01), plain("x")))
        await layout_settled(pilot)
        summary, x = (inspector.get_row(key) for key in ("\x00module deep", "x"))
        columns = [key for key, _ in inspector.columns.items()]
        styles = {str(column.value): cell.style for column, cell in zip(columns, summary, strict=True)}
        assert styles["grad"] == CHANGED and styles["name"] == "" and styles["data"] == ""
        assert all(cell.style == "" for cell in x)
        assert isinstance(inspector.shown_rows[0], ModuleRow) and isinstance(inspector.shown_rows[1], TensorRow)
        assert inspector.border_subtitle == "201 tensors, 200 changed"


async def test_one_tensor_under_several_names_is_one_row_and_the_count_says_so() -> None:
    async with ShortInspectorApp().run_test(size=(120, 30)) as pilot:
        inspector = pilot.app.query_one(TensorInspector)
        inspector.show((plain("x", aliases=("c", "g['x']")), plain("y")))
        await layout_settled(pilot)
        assert inspector.row_count == 2
        assert str(inspector.get_row("x")[0]) == "x (= c, g['x'])"
        assert inspector.border_subtitle == "2 tensors (4 names), 2 changed"


async def test_widths_follow_the_pane_when_the_terminal_is_resized() -> None:
    async with ShortInspectorApp().run_test(size=(120, 30)) as pilot:
        inspector = pilot.app.query_one(TensorInspector)
        inspector.show((plain("x"), *linear(("model",), ("Linear",), 64, 32, grad=0.02)))
        await layout_settled(pilot)
        wide = dict(inspector.columns)
        assert {str(key.value) for key in wide} == {"name", "shape", "dtype", "requires_grad", "is_leaf", "grad_fn", "data", "grad"}
        await pilot.resize_terminal(80, 24)
        await layout_settled(pilot)
        narrow = {str(key.value): column.width for key, column in inspector.columns.items()}
        assert {"name", "shape", "grad_fn", "data", "grad"} <= set(narrow) and "is_leaf" not in narrow
        assert sum(width + 2 * inspector.cell_padding for width in narrow.values()) <= inspector.size.width
        assert str(inspector.get_row("model.weight")[-1]).endswith("…")


async def test_in_the_app_the_filters_keys_stay_in_the_inspector_and_the_footer_offers_it() -> None:
    from textual.widgets._footer import FooterKey

    from gradrepl.ui.widgets.code_input import CodeInput
    from support.model_cells import DEEP_BACKWARD, DEEP_MODEL
    from support.recorded_app import kernel_free, recorded_app, run_cell

    app = recorded_app("deep_model")
    with kernel_free(app):
        async with app.run_test(size=(120, 40)) as pilot:
            await layout_settled(pilot)
            await run_cell(pilot, DEEP_MODEL)
            await run_cell(pilot, DEEP_BACKWARD)
            await pilot.press("f2")
            footer = {key.key: key.description for key in app.screen.query(FooterKey) if key.display}
            assert footer.get("slash") == "Filter" and footer.get("g") == "Graph"
            await pilot.press("/", *"0.weight")
            inspector = app.query_one(TensorInspector)
            assert app.query_one(CodeInput).text == "" and inspector.has_focus
            assert [row.key for row in inspector.shown_rows] == ["deep.0.weight", "deep.10.weight", "mlp.0.weight"]
            assert inspector.border_subtitle == "3 of 37 tensors (38 names), 32 changed"
            await pilot.press("escape", "escape")  # the first clears the filter; the second is not the inspector's
            assert inspector.filter_text == "" and len(inspector.shown_rows) == 7


def test_the_detail_lists_every_other_name() -> None:
    from gradrepl.ui.screens.tensor_detail import detail_table
    from support.screens import rendered

    text = rendered(detail_table(plain("x", aliases=("c", "g['x']"))))
    assert "c, g['x']" in next(line for line in text.splitlines() if line.startswith("also named "))
    assert "also named" not in rendered(detail_table(plain("y")))


async def test_keys_sent_at_once_after_slash_are_the_filters() -> None:
    """`/` and the text in one burst, as tmux or a paste sends them: none of it escapes."""
    from textual import events

    from support.recorded_app import kernel_free, recorded_app, settled

    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(120, 40)) as pilot:
            await settled(pilot)
            inspector = app.query_one(TensorInspector)
            inspector.show(many(300))
            inspector.focus()
            await pilot.pause()
            for key, character in [("slash", "/"), ("9", "9"), ("9", "9")]:
                inspector.post_message(events.Key(key, character))
            await pilot.pause()
            await pilot.pause()
            assert inspector.filter_text == "99" and inspector.has_focus
            assert app.query_one("#input").text == ""  # type: ignore[attr-defined]
