"""Wide output (issue 11, item 14): a line wider than the transcript is cut, never reflowed,
and the block says so: a horizontal scrollbar row under it and a marker at the cut. Shift +
wheel, the horizontal wheel, Left / Right and Home / End scroll it sideways; narrow blocks get
no bar. Opening a 100,000-line fold lays out only a screenful (issue 11, item 3)."""

from __future__ import annotations

import pytest
from textual import events
from textual.pilot import Pilot
from textual.scrollbar import ScrollBar
from textual.strip import Strip

from gradrepl.client.events import Result, Stream
from gradrepl.ui.app import GradReplApp
from gradrepl.ui.state.worksheet import SessionCell
from gradrepl.ui.widgets.code_input import CodeInput
from gradrepl.ui.widgets.output_block import HEAD_LINES, OutputBlock
from gradrepl.ui.widgets.transcript import CellView
from support.recorded_app import kernel_free, recorded_app, settled

pytestmark = [pytest.mark.faults]

# print(torch.randn(3, 9)) after torch.manual_seed(0): torch's own 80-column lines
WIDE = (
    "tensor([[-1.1258, -1.1524, -0.2506, -0.4339,  0.8487,  0.6920, -0.3160, -2.1152,\n"
    "          0.3223],\n"
    "        [-1.2633,  0.3500,  0.2660,  0.1665,  0.8744, -0.1435, -0.1116, -0.6136,\n"
    "          0.0316],\n"
    "        [-0.4927,  0.0537,  0.6181, -0.4128, -0.8411, -2.3160, -0.1023,  0.7924,\n"
    "         -0.2897]])"
)
NARROW = "tensor([3., 3.])"
SIZES = [(80, 24), (120, 40)]


async def show_outputs(pilot: Pilot, *texts: str) -> list[OutputBlock]:
    """One cell per text, its Out[n] the text, as the kernel would send it; the blocks."""
    app = pilot.app
    assert isinstance(app, GradReplApp)
    await settled(pilot)
    for number, text in enumerate(texts, start=1):
        cell = SessionCell(number, f"out_{number}", state="ok", execution_count=number)
        app.transcript.add_cell(cell)
        await pilot.pause()
        app.transcript.add_event(cell, Result(number, {"text/plain": text}))
        app.transcript.finish(cell)
    await settled(pilot)
    return list(app.query(OutputBlock))


def row_text(block: OutputBlock, y: int) -> str:
    return "".join(segment.text for segment in block.render_line(y))


def widget_under(app: GradReplApp, block: OutputBlock) -> object:
    """What the screen shows on the row right under the block's last line of text."""
    region = block.content_region
    widget, _ = app.get_widget_at(region.x + 3, region.y + block.row_count)
    return widget


def wheel(app: GradReplApp, block: OutputBlock, event: type[events.MouseEvent], *, shift: bool = False) -> None:
    """A wheel event from the terminal, the pointer over the block's first line on screen."""
    shown = block.content_region.intersection(app.transcript.scrollable_content_region)
    assert shown.height > 0, "the block is not on screen"
    x, y = shown.x + 4, shown.y
    app.post_message(event(None, x, y, 0, 0, 0, shift, False, False, screen_x=x, screen_y=y))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_a_wide_output_has_a_scrollbar_row_under_it_and_a_narrow_one_none(size: tuple[int, int]) -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=size) as pilot:
            wide, narrow = await show_outputs(pilot, WIDE, NARROW)
            assert wide.show_horizontal_scrollbar and not narrow.show_horizontal_scrollbar
            assert wide.outer_size.height == wide.row_count + 1  # the bar is a row of its own
            assert narrow.outer_size.height == narrow.row_count
            under = widget_under(app, wide)
            assert isinstance(under, ScrollBar) and under is wide.horizontal_scrollbar
            assert wide.view_text().split("\n")[-1].endswith("-0.2897]])")  # no line is hidden by the bar
            assert not isinstance(widget_under(app, narrow), ScrollBar)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_a_cut_line_ends_in_a_marker_that_goes_once_scrolled_to_its_end(size: tuple[int, int]) -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=size) as pilot:
            wide, narrow = await show_outputs(pilot, WIDE, NARROW)
            width = wide.scrollable_content_region.width
            first, second = row_text(wide, 0), row_text(wide, 1)
            assert len(first) == width and first.endswith("…")  # cut: the line goes on
            assert not second.rstrip().endswith("…") and "0.3223]," in second  # "0.3223]," fits
            assert "…" not in row_text(narrow, 0)
            wide.scroll_to(x=wide.max_scroll_x, animate=False)
            await pilot.pause()
            assert row_text(wide, 0).endswith("-2.1152,")  # the end of the line, no marker
            assert "…" not in wide.view_text()  # the marker is drawn, never copied


async def test_shift_wheel_and_the_horizontal_wheel_scroll_a_wide_output_and_the_bar_follows() -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(80, 24)) as pilot:
            wide, narrow, _ = await show_outputs(pilot, WIDE, NARROW, NARROW)
            transcript_y = app.transcript.scroll_y
            wheel(app, wide, events.MouseScrollDown, shift=True)
            await pilot.pause()
            assert wide.scroll_x > 0 and app.transcript.scroll_y == transcript_y
            assert wide.horizontal_scrollbar.position == wide.scroll_x
            after_shift_wheel = wide.scroll_x
            wheel(app, wide, events.MouseScrollRight)
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            assert wide.scroll_x > after_shift_wheel
            assert wide.horizontal_scrollbar.position == wide.scroll_x
            wheel(app, wide, events.MouseScrollLeft)
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            wheel(app, wide, events.MouseScrollUp, shift=True)
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            assert wide.scroll_x < after_shift_wheel
            # The plain wheel over a wide block still scrolls the transcript, never the block.
            app.transcript.scroll_home(animate=False)
            await pilot.pause()
            before = wide.scroll_x
            assert app.transcript.max_scroll_y > 0
            wheel(app, wide, events.MouseScrollDown)
            await pilot.pause()
            assert app.transcript.scroll_y > 0 and wide.scroll_x == before
            assert narrow.scroll_x == 0 and not narrow.allow_horizontal_scroll


async def test_home_and_end_on_a_focused_wide_block_go_to_its_first_and_last_columns() -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(80, 24)) as pilot:
            wide, narrow, _ = await show_outputs(pilot, WIDE, NARROW, NARROW)
            app.transcript.scroll_home(animate=False)
            await pilot.pause()
            wide.focus()
            await pilot.press("end")
            assert wide.max_scroll_x > 0 and wide.scroll_x == wide.max_scroll_x
            assert wide.horizontal_scrollbar.position == wide.max_scroll_x
            assert app.transcript.scroll_y == 0  # End went to the block, not to the latest output
            await pilot.press("left")
            assert wide.scroll_x == wide.max_scroll_x - 8
            await pilot.press("home")
            assert wide.scroll_x == 0
            await pilot.press("right")
            assert wide.scroll_x == 8
            # A narrow block leaves End to the transcript: its latest output.
            narrow.focus()
            app.transcript.scroll_home(animate=False)
            await pilot.pause()
            await pilot.press("end")
            await pilot.pause()
            assert app.transcript.max_scroll_y > 0 and app.transcript.scroll_y >= app.transcript.max_scroll_y - 1


async def test_a_wide_100000_line_output_scrolls_sideways_drawing_only_a_screenful() -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(80, 24)) as pilot:
            await settled(pilot)
            cell = SessionCell(1, "for i in range(100000): print(str(i) * 20)")
            app.transcript.add_cell(cell)
            app.transcript.add_event(cell, Stream("stdout", "".join(f"{str(i) * 20}\n" for i in range(100_000))))
            await settled(pilot)
            [block] = app.query(OutputBlock)
            block.action_toggle_fold()
            await settled(pilot)
            drawn: list[int] = []
            render_line = block.render_line

            def counted(y: int) -> Strip:
                drawn.append(y)
                return render_line(y)

            block.render_line = counted  # type: ignore[method-assign]
            wheel(app, block, events.MouseScrollDown, shift=True)
            await settled(pilot)
            assert block.scroll_x > 0 and block.show_horizontal_scrollbar
            assert 0 < len(set(drawn)) < 100


def numbers(count: int) -> str:
    return "".join(f"{i}\n" for i in range(count))


async def show_stream(pilot: Pilot, text: str, *, running: bool = False, number: int = 1) -> OutputBlock:
    app = pilot.app
    assert isinstance(app, GradReplApp)
    await settled(pilot)
    cell = SessionCell(number, "for i in range(100000): print(i)")
    if running:
        cell.state = "running"
    app.transcript.add_cell(cell)
    await pilot.pause()
    app.transcript.add_event(cell, Stream("stdout", text))
    await settled(pilot)
    return app.transcript.view_of(cell).query_one(OutputBlock)


async def test_an_opened_100000_line_fold_scrolls_inside_a_block_of_the_folded_height() -> None:
    """Laid out in place, 100,000 rows cost Textual O(rows) work on every layout (dirty
    lines, its spatial map) and full garbage collections: keys waited 100 ms and more."""
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(80, 24)) as pilot:
            block = await show_stream(pilot, numbers(100_000))
            folded_height = block.outer_size.height
            block.action_toggle_fold()
            await settled(pilot)
            assert block.expanded and block.row_count == 100_001
            assert block.outer_size.height == folded_height  # the lines scroll inside it
            assert max(widget.outer_size.height for widget in app.screen.query("*")) < 1_000
            assert app.transcript.virtual_size.height < 1_000
            assert block.show_vertical_scrollbar and block.scroll_y == 0
            assert row_text(block, 12).strip() == "▼ fold 99,976 lines" and row_text(block, 13).strip() == "12"
            # The wheel over it scrolls its lines; Down / PageDown / End when it has focus.
            app.transcript.scroll_to_widget(block, animate=False, top=True)
            await settled(pilot)
            wheel(app, block, events.MouseScrollDown)
            await settled(pilot)
            assert block.scroll_y > 0
            block.focus()
            block.scroll_to(y=0, animate=False, immediate=True)
            await pilot.press("down", "pagedown")
            await settled(pilot)
            assert block.scroll_y > 1
            await pilot.press("end")
            await settled(pilot)
            assert block.scroll_y == block.max_scroll_y
            assert row_text(block, block.scrollable_content_region.height - 1).strip() == "99999"
            await pilot.press("home")
            assert block.scroll_y == 0
            await pilot.press("enter")
            await settled(pilot)
            assert not block.expanded and block.outer_size.height == folded_height
            assert not block.show_vertical_scrollbar


async def test_an_opened_fold_of_a_running_cell_follows_its_new_lines_from_its_end() -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(120, 40)) as pilot:
            block = await show_stream(pilot, numbers(5_000), running=True)
            block.action_toggle_fold()
            await settled(pilot)
            block.scroll_to(y=block.max_scroll_y, animate=False, immediate=True)
            await settled(pilot)
            view = app.transcript.query_one("#cell-1", CellView)
            view.add_event(Stream("stdout", "step 5000\n"))
            await settled(pilot)
            assert block.scroll_y == block.max_scroll_y
            assert row_text(block, block.scrollable_content_region.height - 1).strip() == "step 5000"


async def test_an_opened_fold_of_a_few_hundred_lines_still_opens_in_place() -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(120, 40)) as pilot:
            block = await show_stream(pilot, numbers(500))
            block.action_toggle_fold()
            await settled(pilot)
            assert block.outer_size.height == 501 and not block.show_vertical_scrollbar


async def test_a_click_on_the_fold_row_opens_it_and_leaves_the_keys_in_the_input() -> None:
    """Focus moving to the block and back to the input on the next key restyled the panes
    and the footer twice: 200-500 ms before the key was echoed."""
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(120, 40)) as pilot:
            block = await show_stream(pilot, numbers(100_000))
            code_input = app.query_one(CodeInput)
            code_input.focus()
            app.transcript.scroll_to_widget(block, animate=False, top=True)
            await settled(pilot)
            await pilot.click(block, offset=(3, HEAD_LINES))
            assert block.expanded and app.focused is code_input
            await pilot.press("x")
            assert code_input.text == "x"
            await pilot.click(block, offset=(3, 2))  # a line of it: its keys (Home / End ...) are wanted
            assert app.focused is block


async def test_a_click_on_an_output_without_keys_of_its_own_leaves_the_keys_in_the_input() -> None:
    """A click on a short output's line focused it, and the next key typed moved focus back:
    two restyles of the panes and the footer (120-150 ms in tmux) before the key was echoed.
    A wide output scrolls sideways with the keys, so a click gives it focus; the transcript's
    border shows where focus is without a `:focus-within` rule restyling every cell."""
    from textual.color import Color

    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(120, 40)) as pilot:
            short = await show_stream(pilot, numbers(5))
            code_input = app.query_one(CodeInput)
            code_input.focus()
            await settled(pilot)
            await pilot.click(short, offset=(3, 1))
            assert app.focused is code_input
            wide = await show_stream(pilot, "x" * 400 + "\n", number=2)
            await settled(pilot)
            await pilot.click(wide, offset=(3, 0))
            assert app.focused is wide
            accent, panel = (Color.parse(app.theme_variables[name]) for name in ("accent", "panel"))
            assert app.transcript.styles.border_top[1] == accent
            await pilot.press("y")
            assert app.focused is code_input and code_input.text.endswith("y")
            assert app.transcript.styles.border_top[1] == panel
