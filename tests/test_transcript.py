"""The transcript: long outputs fold between head and tail and expand lazily, control
sequences never reach the terminal, it follows new output, separators (issue 11: 3, 4, 6, 7)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownBlock

from gradrepl.client.events import Result, Stream
from gradrepl.ui.app import GradReplApp
from gradrepl.ui.state.history import History
from gradrepl.ui.state.journal import Journal
from gradrepl.ui.state.worksheet import SessionCell
from gradrepl.ui.widgets.code_input import CodeInput
from gradrepl.ui.widgets.output_block import OutputBlock
from gradrepl.ui.widgets.status_line import StatusLine
from gradrepl.ui.widgets.transcript import CellView, Transcript
from support.recorded_app import kernel_free, recorded_app, run_cell, settled
from support.recorded_session import RecordedSession
from support.recording import CellStep, RawMessage, Recording
from support.screens import rendered
from support.waiting import until

SIZE = (120, 40)


class TranscriptApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Transcript(id="transcript")


def numbers(count: int) -> str:
    return "".join(f"{i}\n" for i in range(count))


async def test_a_long_output_shows_its_head_and_its_tail_with_one_fold() -> None:
    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await run_cell(pilot, "for i in range(100):\n    print('line', i)")
            [block] = app.query(OutputBlock)
            shown = block.view_text().split("\n")
            assert shown[:12] == [f"line {i}" for i in range(12)]
            assert shown[12] == "▶ 76 more lines"
            assert shown[13:] == [f"line {i}" for i in range(88, 100)]


async def test_expanding_100000_lines_renders_only_what_is_on_screen() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(80, 24)) as pilot:
        transcript = app.query_one(Transcript)
        cell = SessionCell(1, "for i in range(100000): print(i)")
        transcript.add_cell(cell)
        await pilot.pause()
        transcript.add_event(cell, Stream("stdout", numbers(100_000)))
        await pilot.pause()
        block = app.query_one(OutputBlock)
        drawn: list[int] = []
        render_line = block.render_line
        block.render_line = lambda y: (drawn.append(y), render_line(y))[1]  # type: ignore[method-assign]
        block.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert block.expanded and block.row_count == 100_001
        assert 0 < len(set(drawn)) < 100  # a screenful or two, not 100,000 lines
        await pilot.press("enter")
        assert not block.expanded


async def test_while_a_cell_runs_its_latest_lines_are_shown() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(80, 24)) as pilot:
        transcript = app.query_one(Transcript)
        cell = SessionCell(1, "train()")
        transcript.add_cell(cell)
        await pilot.pause()
        for step in range(50):
            transcript.add_event(cell, Stream("stdout", f"step {step}\n"))
        await pilot.pause()
        assert app.query_one(OutputBlock).view_text().split("\n")[-1] == "step 49"


async def test_control_sequences_in_output_are_not_drawn() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(80, 24)) as pilot:
        transcript = app.query_one(Transcript)
        cell = SessionCell(1, "print(...)")
        transcript.add_cell(cell)
        await pilot.pause()
        transcript.add_event(cell, Stream("stdout", "\x1b]0;pwned\x07\x1b[?1049l\x1b[2Jsafe\x1b]52;c;aGk=\x07\n"))
        transcript.add_event(cell, Result(1, {"text/plain": "\x1b]0;out\x07tensor([[1., 2.],\n        [3., 4.]])"}))
        await pilot.pause()
        strips = [line for block in app.query(OutputBlock) for line in (block.render_line(y) for y in range(block.row_count))]
        text = "".join(segment.text for strip in strips for segment in strip)
        assert "\x1b" not in text and "\x07" not in text
        out = app.query(OutputBlock).last().view_text().split("\n")
        assert out == ["Out[1]: tensor([[1., 2.],", "                [3., 4.]])"]  # continuation lines align


async def test_a_submitted_cell_is_followed_after_the_pane_shrinks_and_a_marker_shows_output_below() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(80, 24)) as pilot:
        transcript = app.query_one(Transcript)
        for number in range(1, 6):
            cell = SessionCell(number, "x")
            transcript.add_cell(cell)
            await pilot.pause()
            transcript.add_event(cell, Stream("stdout", numbers(10)))
        await pilot.pause()
        transcript.styles.height = 10  # the input grew (a multi-line paste)
        await pilot.pause()
        await pilot.pause()
        assert transcript.scroll_y >= transcript.max_scroll_y - 1
        transcript.scroll_home(animate=False)
        await pilot.pause()
        transcript.add_event(cell, Stream("stdout", "more\n"))
        await pilot.pause()
        await pilot.pause()
        assert transcript.new_output_below
        transcript.focus()
        await pilot.press("end")
        await pilot.pause()
        assert not transcript.new_output_below and transcript.scroll_y >= transcript.max_scroll_y - 1


async def test_a_separator_is_a_rule_with_its_label() -> None:
    app = TranscriptApp()
    async with app.run_test(size=(80, 24)) as pilot:
        transcript = app.query_one(Transcript)
        transcript.add_separator("kernel restarted 08:31")
        await pilot.pause()
        line = rendered(transcript.query_one(".separator", Static).content, 60)  # type: ignore[arg-type]
        assert "kernel restarted 08:31" in line and line.startswith("─")


MARKDOWN_BETWEEN = Path(__file__).parent / "data" / "scripts" / "markdown_between.py"


async def test_a_resumed_scripts_markdown_cells_are_shown_between_its_code_cells() -> None:
    app = recorded_app("markdown_between", script=MARKDOWN_BETWEEN)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            order = [
                ("markdown", child) if isinstance(child, Markdown) else ("code", child)
                for child in app.transcript.children if isinstance(child, (Markdown, CellView))
            ]
            assert [kind for kind, _ in order] == ["markdown", "code", "markdown", "code"]
            first, second = (widget for kind, widget in order if kind == "markdown")
            assert first.source.strip() == "# Gradients" and second.source.strip() == "Now **backward** fills `x.grad`."
            paragraph = second.query(MarkdownBlock).first()
            drawn = "".join(segment.text for y in range(paragraph.size.height) for segment in paragraph.render_line(y))
            assert "Now backward fills x.grad." in drawn  # rendered: no ** or ` on screen


async def test_ctrl_end_in_the_input_returns_to_the_latest_output() -> None:
    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await run_cell(pilot, "for i in range(100):\n    print('line', i)")
            await run_cell(pilot, "for i in range(40):\n    print('more', i)\n'done'")
            transcript = app.transcript
            assert transcript.max_scroll_y > 2
            transcript.scroll_home(animate=False)
            await pilot.pause()
            transcript.add_event(app.worksheet.cells[-1], Stream("stdout", "more\n"))
            await until(lambda: transcript.new_output_below, "the new-output marker")
            assert isinstance(app.focused, CodeInput)
            await pilot.press("ctrl+end")
            await until(lambda: not transcript.new_output_below, "the marker gone")
            assert transcript.scroll_y >= transcript.max_scroll_y - 1 and isinstance(app.focused, CodeInput)


class StableTranscriptApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Transcript(stable=True, id="transcript")


def test_snapshot_the_new_output_marker(snap_compare: Callable[..., bool]) -> None:
    """Two finished cells, the transcript scrolled to its top, then more output came: the
    accent bar at the transcript's bottom reads "▼ new output below (Ctrl+End)"."""
    app = recorded_app("long_output")

    async def scrolled_up_then_output(pilot: Pilot) -> None:
        await run_cell(pilot, "for i in range(100):\n    print('line', i)")
        await run_cell(pilot, "for i in range(40):\n    print('more', i)\n'done'")
        app.transcript.scroll_home(animate=False)
        await pilot.pause()
        app.transcript.add_event(app.worksheet.cells[-1], Stream("stdout", "more\n"))
        await until(lambda: app.transcript.new_output_below, "the new-output marker")
        await pilot.pause()

    with kernel_free(app):
        assert snap_compare(app, terminal_size=SIZE, run_before=scrolled_up_then_output)


def test_snapshot_the_live_tail_of_a_running_cell(snap_compare: Callable[..., bool]) -> None:
    """A cell still running has printed "step 0" … "step 59"; the transcript follows its end:
    "step 2" … "step 11" (the head's last lines), the fold row "▶ 36 more lines", then the
    latest 12 lines, "step 48" … "step 59" on the bottom line."""
    app = StableTranscriptApp()

    async def streaming(pilot: Pilot) -> None:
        transcript = app.query_one(Transcript)
        cell = SessionCell(1, "train()")
        cell.state = "running"
        transcript.add_cell(cell)
        await pilot.pause()
        for step in range(60):
            transcript.add_event(cell, Stream("stdout", f"step {step}\n"))
        await until(lambda: app.query_one(OutputBlock).line_count == 60, "60 lines")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=streaming)


async def test_an_error_message_wider_than_the_pane_wraps_under_its_frames() -> None:
    """The frames of a traceback keep their lines; its last line, the message, is read whole."""
    app = recorded_app("leaf_in_place_error")
    with kernel_free(app):
        async with app.run_test(size=(120, 40)) as pilot:
            await settled(pilot)
            await run_cell(pilot, "import torch\nx = torch.ones(2, 2, requires_grad=True)")
            await run_cell(pilot, "x.add_(1)")
            (message,) = app.query(".error-message")
            shown = message.render()
            assert "is being used in an in-place operation" in str(shown)
            assert message.size.height > 1  # wrapped at the pane, not cut


NO_REPLY = "the kernel sent no reply: AttributeError: 'Slotted' object attribute 'write' is read-only"


def no_reply_recording() -> Recording:
    """What a kernel sent for a cell ipykernel failed to run (gradrepl's own line on stderr,
    no reply: session.py gives state error, no error record, the log's reason), then a cell
    that worked, then one with an ordinary error."""
    warned = RawMessage("stream", {"name": "stderr", "text": "gradrepl: sys.stdout was set to an object of type Slotted\n"})
    raised = RawMessage("error", {"ename": "NameError", "evalue": "name 'y' is not defined", "traceback": []})
    result = RawMessage("execute_result", {"execution_count": 2, "data": {"text/plain": "4"}, "metadata": {}})
    return Recording("no_reply", steps=(
        CellStep("1 + 1", None, (warned,), None, None, {"status": "error", "execution_count": None, "reason": NO_REPLY},
                 ("Stream", "CellFinished")),
        CellStep("2 + 2", None, (result,), {"status": "ok", "execution_count": 2}, None,
                 {"status": "ok", "execution_count": 2, "reason": ""}, ("Result", "CellFinished")),
        CellStep("y", None, (raised,), {"status": "error", "execution_count": 3}, None,
                 {"status": "error", "execution_count": 3, "reason": ""}, ("Error", "CellFinished")),
    ))


@pytest.mark.faults
async def test_a_cell_the_kernel_sent_no_reply_for_says_so_and_why() -> None:
    """Its prompt says `kernel error` (as a timed-out cell's says `timed out`) and the
    reason is its note, as for a timed-out or died cell; other cells have neither."""
    app = GradReplApp(None, history=History(None), journal=Journal(None), stable=True,
                      session_factory=RecordedSession.factory(no_reply_recording()))
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            for source in ("1 + 1", "2 + 2", "y"):
                await run_cell(pilot, source)
            failed, worked, raised = app.query(CellView)
            assert failed.cell.state == "error" and failed.cell.reason == NO_REPLY
            prompt = str(failed.query_one(".prompt", Static).render())
            assert prompt.startswith("In [ ]:") and prompt.endswith("kernel error")
            assert [str(note.render()) for note in failed.query(".note")] == [NO_REPLY]
            assert "Slotted" in failed.outputs[0].view_text()  # what it printed stays above
            for view in (worked, raised):
                assert "error" not in str(view.query_one(".prompt", Static).render())
                assert not view.query(".note")
            assert app.query_one(StatusLine).kernel_state == "idle"  # the kernel runs on: no "dead" status


def test_a_very_long_cell_shows_its_head_and_tail_and_says_how_much_is_left_out() -> None:
    """Highlighting 25,000 lines took over a minute per layout; the cell itself runs and is
    saved whole (the worksheet keeps its source, the view only shows it)."""
    from gradrepl.ui.widgets.transcript import SOURCE_END, SOURCE_WIDTH, shown_source

    source = "\n".join(f"v{i} = {i}" for i in range(25_000))
    shown = shown_source(source).split("\n")
    assert len(shown) == 2 * SOURCE_END + 1
    assert shown[0] == "v0 = 0" and shown[-1] == "v24999 = 24999"
    assert f"{25_000 - 2 * SOURCE_END:,} more lines" in shown[SOURCE_END]
    wide = shown_source("x = '" + "a" * 5000 + "'")
    assert len(wide) < SOURCE_WIDTH + 40 and "more characters" in wide
    assert shown_source("a = 1\nb = 2\n\n") == "a = 1\nb = 2"


def test_a_long_source_line_wraps_under_its_own_indentation_after_a_mark() -> None:
    """Rich wraps to column 0, so `time.sleep(0.5)` of a loop body looked like a line after the loop."""
    from rich.console import Console
    from rich.syntax import Syntax

    from gradrepl.ui.syntax import CONTINUED, WrappedSource

    source = 'for i in range(8):\n    print("tick", i, flush=True); time.sleep(0.5)  # then more words\nx = 1'
    console = Console(width=40, record=True)
    console.print(WrappedSource(Syntax(source, "python", background_color="default")))
    lines = console.export_text().rstrip("\n").split("\n")
    assert lines[0] == "for i in range(8):" and lines[-1] == "x = 1"
    assert lines[1].startswith('    print("tick", i, flush=True);')
    wrapped = lines[2:-1]
    assert wrapped and all(line.startswith("    " + CONTINUED) for line in wrapped), lines
    assert all(len(line) <= 40 for line in lines)
    rejoined = lines[1] + " " + " ".join(line.removeprefix("    " + CONTINUED) for line in wrapped)
    assert " ".join(rejoined.split()) == " ".join(source.splitlines()[1].split())  # nothing lost


def test_a_backward_entry_wraps_under_its_indentation_and_a_rule_keeps_its_label_whole() -> None:
    """At 80x24 the backward log is 30 columns: 'via A → B → C' went on at column 0 and the
    restart rule read 'kernel restarted: a fre…'."""
    from rich.text import Text

    from gradrepl.ui.hanging import HangingText, LabelledRule
    from support.screens import rendered

    entry = Text("In [1] (w * 3).sum().backward()\n  via SumBackward0 → MulBackward0 → AccumulateGrad\nw.grad fresh")
    lines = rendered(HangingText(entry), 28).splitlines()
    assert lines[0].startswith("In [1] ") and lines[1].startswith("  ") and lines[-1].rstrip() == "w.grad fresh"
    via = [line for line in lines if "Backward0" in line or "AccumulateGrad" in line]
    assert via[0].startswith("  via ") and all(line.startswith("    ") for line in via[1:]), lines
    assert " ".join(line.strip() for line in via) == "via SumBackward0 → MulBackward0 → AccumulateGrad"
    assert all(len(line.rstrip()) <= 28 for line in lines)
    label = "kernel restarted: a fresh namespace"
    narrow = rendered(LabelledRule(label), 28)
    assert "…" not in narrow and " ".join(narrow.replace("─", " ").split()) == label, narrow
    assert label in rendered(LabelledRule(label), 60) and "─" in rendered(LabelledRule(label), 60).split(label)[0]
