"""Keys and focus as IPython and Jupyter users expect them, on the kernel-free harness:
typing always reaches the input, its editing habits, the panes' keys, restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Label, Static

from gradrepl.ui.app import GradReplApp
from gradrepl.ui.screens.confirm_quit import ConfirmQuitScreen
from gradrepl.ui.screens.confirm_restart import ConfirmRestartScreen
from gradrepl.ui.screens.kernel_died import KernelDiedScreen
from gradrepl.ui.widgets.code_input import CodeInput
from gradrepl.ui.widgets.transcript import CellView, Transcript
from support.recorded_app import SEED, kernel_free, recorded_app, run_cell, session_of, settled, workers_done
from support.screens import rendered

SIZE = (120, 40)


def code_input(app: GradReplApp) -> CodeInput:
    return app.query_one(CodeInput)


async def type_text(pilot, text: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press(*[{" ": "space", "\n": "ctrl+j", "(": "left_parenthesis", ")": "right_parenthesis",
                         ":": "colon", "=": "equals_sign", ".": "full_stop", ",": "comma"}.get(c, c) for c in text])


async def two_long_outputs(pilot) -> None:  # type: ignore[no-untyped-def]
    """The long_output recording's two cells: a folded output, then one more below it."""
    await run_cell(pilot, "for i in range(100):\n    print('line', i)")
    await run_cell(pilot, "for i in range(40):\n    print('more', i)\n'done'")


# ---------------------------------------------------------------- focus


async def test_keys_typed_after_clicking_the_transcript_go_to_the_input() -> None:
    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, "for i in range(100):\n    print('line', i)")
            await pilot.click(Transcript)
            assert not isinstance(app.focused, CodeInput)
            await type_text(pilot, "x1 = 2")
            assert isinstance(app.focused, CodeInput)
            assert code_input(app).text == "x1 = 2"


async def test_a_fold_opened_with_the_mouse_does_not_swallow_typing() -> None:
    from textual.widgets import Collapsible
    from textual.widgets._collapsible import CollapsibleTitle

    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, "for i in range(100):\n    print('line', i)")
            titles = app.query(CollapsibleTitle)  # the fold's title takes focus when clicked
            await pilot.click(titles.last() if titles else Transcript)
            if titles:
                assert not app.query(Collapsible).last().collapsed
            await type_text(pilot, "ab")
            assert code_input(app).text == "ab"


@pytest.mark.parametrize("key,pane", [("f2", "inspector"), ("f3", "backward-log"), ("f5", "transcript"), ("f4", "input")])
async def test_each_pane_has_its_function_key(key: str, pane: str) -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            if pane == "input":
                await pilot.press("f5")
            await pilot.press(key)
            focused = app.focused
            assert focused is not None
            assert focused.id == pane or any(a.id == pane for a in focused.ancestors_with_self), focused


async def test_page_up_and_down_in_the_input_scroll_the_transcript() -> None:
    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await two_long_outputs(pilot)
            transcript = app.query_one(Transcript)
            await pilot.pause()
            bottom = transcript.scroll_y
            assert bottom > 0
            code_input(app).load_text("draft")
            await pilot.press("pageup")
            await pilot.wait_for_scheduled_animations()
            assert transcript.scroll_y < bottom
            assert isinstance(app.focused, CodeInput) and code_input(app).text == "draft"
            await pilot.press("pagedown")
            await pilot.wait_for_scheduled_animations()
            assert transcript.scroll_y == bottom


# ---------------------------------------------------------------- editing habits


async def test_backspace_in_indentation_removes_one_level() -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            editor = code_input(app)
            editor.load_text("for i in x:\n        ")
            editor.move_cursor(editor.document.end)
            await pilot.press("backspace")
            assert editor.text == "for i in x:\n    "
            await pilot.press("backspace")
            assert editor.text == "for i in x:\n"
            editor.load_text("a = 1  ")  # not indentation: one character
            editor.move_cursor(editor.document.end)
            await pilot.press("backspace")
            assert editor.text == "a = 1 "
            editor.load_text("   ")  # 3 spaces: back to column 0, the level below
            editor.move_cursor(editor.document.end)
            await pilot.press("backspace")
            assert editor.text == ""


@pytest.mark.parametrize("key", ["escape", "ctrl+c"])
async def test_escape_and_ctrl_c_with_nothing_running_clear_the_draft_into_history(key: str) -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            editor = code_input(app)
            editor.load_text("half = typed(")
            await pilot.press(key)
            assert editor.text == ""
            await pilot.press("up")
            assert editor.text == "half = typed("


async def test_ctrl_u_deletes_to_the_start_of_the_line() -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            editor = code_input(app)
            editor.load_text("first\nsecond line")
            editor.move_cursor((1, 6))
            await pilot.press("ctrl+u")
            assert editor.text == "first\n line"


async def test_ctrl_d_on_an_empty_input_quits_and_deletes_otherwise() -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            editor = code_input(app)
            editor.load_text("ab")
            editor.move_cursor((0, 0))
            await pilot.press("ctrl+d")
            assert editor.text == "b" and app.return_code is None
            editor.load_text("")
            await pilot.press("ctrl+d")
            await pilot.pause()
        assert app.return_code == 0


async def test_ctrl_d_asks_first_when_cells_are_unsaved() -> None:
    app = recorded_app("completion")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, "varibale_unique = 3\nvaribale_other = 4")
            await pilot.press("ctrl+d")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmQuitScreen)
            await pilot.press("escape")
            assert app.return_code is None


async def test_code_typed_on_after_ctrl_d_does_not_answer_the_quit_question() -> None:
    """Ctrl+D on an empty input, then `def f(): pass` Enter typed at once: the cells stay unsaved
    and the app runs on (the dialog takes no letters; Enter presses Stay, which has the focus)."""
    app = recorded_app("completion")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, "varibale_unique = 3\nvaribale_other = 4")
            await pilot.press("ctrl+d", *"def f(): pass", "enter")
            await pilot.pause()
            assert app.return_code is None and app.is_running
            assert len(app.worksheet.cells) == 1


async def test_ctrl_l_clears_the_transcript_view_but_keeps_the_cells() -> None:
    app = recorded_app("completion")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, "varibale_unique = 3\nvaribale_other = 4")
            code_input(app).load_text("draft")
            await pilot.press("ctrl+l")
            await pilot.pause()
            assert not app.query(CellView)
            assert len(app.worksheet.cells) == 1
            assert code_input(app).text == "draft"


# ---------------------------------------------------------------- restart

RESTART_FIRST = "import torch\nw = torch.ones(2, requires_grad=True)\n(w * 3).sum().backward()"


async def test_f8_asks_before_a_restart_that_would_lose_named_tensors() -> None:
    app = recorded_app("restart_with_tensors")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, RESTART_FIRST)
            await pilot.press("f8")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmRestartScreen)
            assert "1 named tensor" in str(app.screen.query_one(Label).render())
            await pilot.press("r", "escape")  # a letter typed does not answer it
            await pilot.pause()
            assert session_of(app).restarts == 0 and not isinstance(app.screen, ConfirmRestartScreen)
            await pilot.press("f8")
            await pilot.pause()
            await pilot.click("#restart")
            await workers_done(pilot, "kernel-control")
            await settled(pilot)
            assert session_of(app).restarts == 1
            assert app.inspector.tensors == {} or not app.inspector.tensors
            await run_cell(pilot, "import torch\nv = torch.zeros(3)")
            assert app.worksheet.cells[-1].execution_count == 1


async def test_a_restart_leaves_a_separator_in_the_transcript_and_the_backward_log() -> None:
    app = recorded_app("restart_with_tensors")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, RESTART_FIRST)
            app.restart_kernel()
            await workers_done(pilot, "kernel-control")
            await settled(pilot)
            [rule] = app.backward_log.query(".separator")
            assert "kernel restarted" in rendered(rule.content, 60)  # type: ignore[arg-type]
            assert "kernel restarted" in " ".join(rendered(w.content, 80) for w in app.transcript.query(Static))  # type: ignore[arg-type]


async def test_with_no_named_tensors_f8_restarts_at_once() -> None:
    app = recorded_app("kernel_death")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            for source in ("kept = 1", "import torch\nw = torch.ones(2, requires_grad=True)", "1 / 0",
                           "(w * 3).sum().backward()", "import ctypes\nctypes.string_at(0)"):
                await run_cell(pilot, source)
            assert isinstance(app.screen, KernelDiedScreen)
            # the dialog names the cell as the transcript shows it: its In [ ] follows In [4]
            assert app.screen.where == "the cell after In [4]"
            assert "In [ ]" in str(app.transcript.view_of(app.worksheet.cells[-1]).query_one(".prompt", Static).render())  # type: ignore[union-attr]
            await pilot.press("escape")
            app.tensors = {}  # a dead kernel: nothing named any more
            await pilot.press("f8")
            await workers_done(pilot, "kernel-control")
            await settled(pilot)
            assert session_of(app).restarts == 1
            assert app.backward_log.query(".separator")


# ---------------------------------------------------------------- palette, footer, copy


async def test_the_palette_offers_no_screenshot_that_fails_and_no_maximize_of_one_entry(tmp_path: Path,
                                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = recorded_app("seed_backward_again", script=SEED)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await pilot.press("f5")  # the transcript, a scroll view Textual itself would not offer to maximize
            await pilot.pause()
            main = app.screen
            await pilot.press("ctrl+p")
            await pilot.pause()
            assert "Maximize" in [c.title for c in app.get_system_commands(main)]
            await pilot.press("escape")
            await pilot.press("f3")  # the backward log: its last entry has focus
            await pilot.pause()
            await pilot.press("ctrl+p")  # the palette's own input now has the app's focus
            await pilot.pause()
            commands = {c.title: c for c in app.get_system_commands(main)}
            await pilot.press("escape")
            await pilot.pause()
            maximize = commands["Maximize"]
            maximize.callback()
            await pilot.pause()
            assert app.screen.maximized is app.backward_log
            commands["Screenshot"].callback()
            await pilot.pause()
            assert [p.suffix for p in tmp_path.iterdir()] == [".svg"]


async def test_dialogs_list_their_own_keys_not_the_panes_below() -> None:
    from textual.widgets import Footer

    app = recorded_app("saved_tensor_in_place")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, "import torch\nx = torch.ones(3, requires_grad=True)\na = x * 3\nb = (a.sin() * a).sum()\na.add_(1)")
            await pilot.press("f2", "end", "g")  # b, the last row: a graph (x, a leaf, lists its users)
            await pilot.pause()
            footer = app.screen.query_one(Footer)
            await pilot.pause()
            keys = {b.description for _, b, enabled, _ in footer.screen.active_bindings.values()}
            assert "Expand all" in keys and "Graph" not in keys



async def test_tab_and_shift_tab_leave_the_backward_log_instead_of_walking_its_entries() -> None:
    from gradrepl.ui.widgets.backward_log import BackwardEntry

    app = recorded_app("seed", script=SEED)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            log = app.backward_log
            chain = app.screen.focus_chain
            outside = [w for w in chain if w is not log and log not in w.ancestors]
            inside = [i for i, w in enumerate(chain) if w is log or log in w.ancestors]
            await pilot.press("f3", "up")  # an entry in the middle of the log
            assert isinstance(app.focused, BackwardEntry) and len(list(log.query(BackwardEntry))) >= 2
            await pilot.press("shift+tab")
            assert app.focused is chain[inside[0] - 1] and app.focused in outside, app.focused
            await pilot.press("f3", "up", "tab")
            assert app.focused is chain[(inside[-1] + 1) % len(chain)] and app.focused in outside, app.focused


async def test_copy_last_output_from_the_palette_copies_what_the_last_cell_printed() -> None:
    from support.waiting import until

    app = recorded_app("seed", script=SEED)
    copied: list[str] = []
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
            await pilot.press("ctrl+p", *"copy last", "enter")
            await until(lambda: copied, "the palette's Copy last output to copy")
            assert copied == ["tensor([100.], requires_grad=True)\ntensor([2.])"], copied


async def test_a_printable_key_a_pane_binds_is_not_typed_into_the_input_too() -> None:
    """Space on a focused fold opens it; it is not also a space in the input."""
    from gradrepl.ui.widgets.output_block import OutputBlock

    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, "for i in range(100):\n    print('line', i)")
            [block] = [b for b in app.query(OutputBlock) if b.foldable]
            block.focus()
            await pilot.pause()
            was = block.expanded
            await pilot.press("space")
            await pilot.pause()
            assert block.expanded != was
            assert code_input(app).text == ""


async def test_f5_goes_to_the_latest_output_where_enter_folds_and_escape_returns_to_the_input() -> None:
    from gradrepl.ui.widgets.output_block import OutputBlock

    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, "for i in range(100):\n    print('line', i)")
            [block] = [b for b in app.query(OutputBlock) if b.foldable]
            await pilot.press("f5")
            assert app.focused is block
            await pilot.press("enter")
            await pilot.pause()
            assert block.expanded
            await pilot.press("escape")
            assert isinstance(app.focused, CodeInput) and code_input(app).text == ""


async def test_enter_on_the_transcript_itself_goes_to_the_last_output_in_view() -> None:
    from gradrepl.ui.widgets.output_block import OutputBlock

    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await two_long_outputs(pilot)
            transcript = app.query_one(Transcript)
            transcript.scroll_home(animate=False)
            transcript.focus()
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            first = app.query(OutputBlock).first()
            assert app.focused is first, app.focused
            assert transcript.scroll_y == 0, "focusing an output in view scrolled the transcript"


async def test_escape_closes_the_palettes_keys_panel_and_keeps_the_draft() -> None:
    from textual.widgets import HelpPanel

    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            code_input(app).load_text("draft")
            app.action_show_help_panel()
            await pilot.pause()
            assert app.screen.query(HelpPanel)
            await pilot.press("escape")
            await pilot.pause()
            assert not app.screen.query(HelpPanel)
            assert code_input(app).text == "draft"
            await pilot.press("escape")  # with no panel, Escape is the input's again
            assert code_input(app).text == ""


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_inputs_placeholder_is_whole_at_80_and_120_columns(size: tuple[int, int]) -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=size) as pilot:
            await settled(pilot)
            field = code_input(app)
            line = "".join(segment.text for segment in field.render_line(0))
            assert field.placeholder.startswith("PyTorch code here") and field.placeholder in line, line
            assert field.placeholder.endswith("Tab completes")


async def test_a_pasted_cell_is_recalled_without_the_pastes_last_newline() -> None:
    from textual import events

    cell = "for i in range(100):\n    print('line', i)"
    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            field = code_input(app)
            app.post_message(events.Paste(cell + "\n\n"))  # as the driver sends it
            await pilot.pause()
            assert field.text.endswith("\n")
            await pilot.press("ctrl+r")
            await settled(pilot)
            assert session_of(app).executed == [cell]
            await pilot.press("up")
            assert field.text == cell


@pytest.mark.parametrize("pane", ["f5", "f2"])
async def test_code_typed_fast_in_a_pane_reaches_the_input_whole(pane: str) -> None:
    """The first key moves focus to the input at once, so the spaces after it are typing,
    not the pane's Space (fold) binding. Keys are posted as a terminal sends a burst."""
    from textual import events

    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, "for i in range(100):\n    print('line', i)")
            await pilot.press(pane)
            assert not isinstance(app.focused, CodeInput)
            for character in "x = a + b":
                app.post_message(events.Key("space" if character == " " else character, character))
            await pilot.pause()
            assert code_input(app).text == "x = a + b"


@pytest.mark.parametrize("pane", ["transcript", "backward-log", "inspector"])
async def test_a_maximized_pane_fills_the_screen_with_its_border_whole(pane: str) -> None:
    app = recorded_app("seed", script=SEED)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            widget = app.query_one(f"#{pane}")
            app.screen.maximized = widget
            await pilot.pause()
            assert widget.region.width == SIZE[0], widget.region
            assert widget.region.height >= SIZE[1] - 2, widget.region  # the footer and status line stay


async def test_enter_and_recall_do_not_compile_the_highlighting_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each Enter emptied the input with load_text, which compiles tree-sitter's highlight
    query again: 32 ms on the UI thread at every cell, as its output was about to come.
    The input is emptied and refilled by an edit; Ctrl+Z has nothing to undo after either."""
    from textual.document._syntax_aware_document import SyntaxAwareDocument

    compiled: list[str] = []
    prepare = SyntaxAwareDocument.prepare_query
    monkeypatch.setattr(SyntaxAwareDocument, "prepare_query", lambda self, query: compiled.append(query) or prepare(self, query))
    app = recorded_app("restart_with_tensors")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            code_input = app.query_one(CodeInput)
            assert code_input.language == "python" and compiled  # highlighting on: its query compiled once
            compiled.clear()
            code_input.insert(RESTART_FIRST)
            await pilot.press("ctrl+r")
            await settled(pilot)
            assert code_input.text == "" and app.worksheet.cells[-1].source == RESTART_FIRST
            await pilot.press("up")
            assert code_input.text == RESTART_FIRST
            await pilot.press("ctrl+z")
            assert code_input.text == RESTART_FIRST
            await pilot.press("escape")
            assert code_input.text == ""
            assert compiled == []
