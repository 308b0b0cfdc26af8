"""The app driven through Textual's Pilot against a real kernel: the flows a user goes through."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from gradrepl.cells import read_script
from gradrepl.client.process import KernelProcess
from gradrepl.ui.app import GradReplApp
from gradrepl.ui.screens.autograd_graph import AutogradGraphScreen
from gradrepl.ui.screens.confirm_quit import ConfirmQuitScreen
from gradrepl.ui.screens.kernel_died import KernelDiedScreen
from gradrepl.ui.screens.save_as import SaveAsScreen
from gradrepl.ui.screens.tensor_detail import TensorDetailScreen
from gradrepl.ui.state.history import History
from gradrepl.ui.widgets.backward_log import BackwardLog
from gradrepl.ui.widgets.code_input import CodeInput
from gradrepl.ui.widgets.graph_view import GraphView
from gradrepl.ui.widgets.inspector import TensorInspector
from gradrepl.ui.widgets.status_line import StatusLine
from support.screens import rendered, tree_labels
from support.waiting import until

pytestmark = pytest.mark.kernel

SIZE = (120, 40)
ROOT = Path(__file__).resolve().parent.parent


def make_app(tmp_path: Path, script: Path | None = None) -> GradReplApp:
    return GradReplApp(
        read_script(script) if script else None,
        history=History(tmp_path / "history.jsonl"),
        cwd=script.parent if script else tmp_path,
        stable=True,
    )


@contextlib.asynccontextmanager
async def started(tmp_path: Path, script: Path | None = None) -> AsyncIterator[tuple[GradReplApp, Pilot]]:
    """The app on a 120x40 screen, its kernel ready and any script's cells run."""
    app = make_app(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        await app.until_idle()
        yield app, pilot


async def restart(app: GradReplApp, pilot: Pilot) -> None:
    """A restart as its confirmation's button gives it (the question itself: tests/test_keys.py)."""
    app.restart_kernel()
    await workers_done(app, "kernel-control")
    await app.until_idle()
    await pilot.pause()


async def run_cell(app: GradReplApp, pilot: Pilot, source: str) -> None:
    app.query_one(CodeInput).load_text(source)
    await pilot.press("ctrl+r")
    await app.until_idle()
    await pilot.pause()


async def workers_done(app: GradReplApp, group: str) -> None:
    for worker in [w for w in app.workers if w.group == group]:
        await worker.wait()


def printed(app: GradReplApp, marker: str) -> bool:
    """Whether the running cell has printed `marker` yet."""
    cell = app.runner.running
    return cell is not None and any(marker in getattr(event, "text", "") for event in cell.events)


def texts(app: GradReplApp) -> list[str]:
    """Every cell's stdout and Out text, in order."""
    out = []
    for cell in app.worksheet.cells:
        for event in cell.events:
            text = getattr(event, "text", None)
            if text is not None:
                out.append(text)
    return out


async def test_enter_runs_a_complete_cell_and_continues_an_incomplete_one(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await pilot.press(*"for i in range(2):", "enter")
        code_input = app.query_one(CodeInput)
        assert code_input.text == "for i in range(2):\n    "
        assert app.worksheet.cells == []
        await pilot.press(*"print(i)", "enter")
        assert app.worksheet.cells == []
        await pilot.press("enter")
        await app.until_idle()
        await pilot.pause()
        assert [c.state for c in app.worksheet.cells] == ["ok"]
        assert texts(app) == ["0\n1\n"]
        assert code_input.text == ""


async def test_ctrl_j_always_adds_a_line_and_ctrl_r_always_runs(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await pilot.press(*"a = 1", "ctrl+j", *"b = (2,")
        assert app.query_one(CodeInput).text == "a = 1\nb = (2,"
        await pilot.press("ctrl+r")  # incomplete, but run anyway: a SyntaxError in the cell
        await app.until_idle()
        await pilot.pause()
        cell = app.worksheet.cells[0]
        assert cell.state == "error"
        assert any(getattr(e, "ename", "") == "SyntaxError" for e in cell.events)


async def test_history_recalls_with_up_and_down_and_survives_a_restart(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "first = 1")
        await run_cell(app, pilot, "second = 2")
        await pilot.press(*"draft")
        await pilot.press("up")
        assert app.query_one(CodeInput).text == "second = 2"
        await pilot.press("up")
        assert app.query_one(CodeInput).text == "first = 1"
        await pilot.press("down", "down")
        assert app.query_one(CodeInput).text == "draft"
    again = make_app(tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        await again.until_idle()
        await pilot.press("up")
        assert again.query_one(CodeInput).text == "second = 2"


async def test_up_inside_a_multiline_cell_moves_the_cursor_not_the_history(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "older = 1")
        code_input = app.query_one(CodeInput)
        code_input.load_text("a = 1\nb = 2")
        code_input.move_cursor((1, 3))
        await pilot.press("up")
        assert code_input.text == "a = 1\nb = 2"
        assert code_input.cursor_location[0] == 0


async def test_tab_completes_from_the_live_kernel(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "varibale_unique = 3")
        await pilot.press(*"varibale_u", "tab")
        await workers_done(app, "complete")
        await pilot.pause()
        assert app.query_one(CodeInput).text == "varibale_unique"


async def test_tab_with_several_matches_opens_a_list_to_choose_from(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "grad_alpha = 1\ngrad_beta = 2")
        await pilot.press(*"grad_", "tab")
        await workers_done(app, "complete")
        await pilot.pause()
        menu = app.query_one("#completions")
        assert menu.display
        await pilot.press("down", "enter")
        assert app.query_one(CodeInput).text == "grad_beta"
        assert not menu.display


async def test_typing_while_the_kernel_starts_keeps_every_key(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        # at once, while the panes mount and highlighting switches on
        await pilot.press(*"abc = 1", "ctrl+j", *"d = 2", "ctrl+j")
        await app.until_idle()
        await pilot.press(*"23")
        assert app.query_one(CodeInput).text == "abc = 1\nd = 2\n23"


async def test_typing_is_accepted_before_the_kernel_is_ready(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    gate = asyncio.Event()
    connect = app.runner.start

    async def slow_kernel() -> None:  # a kernel still importing torch, say
        await gate.wait()
        await connect()

    app.runner.start = slow_kernel  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"early = 6 * 7", "enter", *"early", "enter")
        await pilot.pause()
        assert app.runner.state == "starting"
        assert [c.state for c in app.worksheet.cells] == ["queued", "queued"]
        gate.set()
        await app.until_idle()
        await pilot.pause()
        assert texts(app) == ["42"]


async def test_resume_runs_the_script_and_goes_on_from_its_state(tmp_path: Path) -> None:
    script = tmp_path / "lesson.py"
    script.write_text("# %%\nbase = 10\n\n# %%\n1 / 0\n\n# %%\nafter = base + 1\n", encoding="utf-8")
    async with started(tmp_path, script) as (app, pilot):
        await pilot.pause()
        assert [c.state for c in app.worksheet.cells] == ["ok", "error", "ok"]
        assert [c.script_line for c in app.worksheet.cells] == [2, 5, 8]
        assert app.query_one(StatusLine).progress == ""
        await run_cell(app, pilot, "after")
        assert texts(app)[-1] == "11"
        notices = [n.message for n in app._notifications]
        assert any("3 cells, 1 failed (cell 2)" in m for m in notices)


async def test_resume_shows_progress_while_cells_run(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text("# %%\nimport time\n\n# %%\ntime.sleep(1)\n\n# %%\ndone = True\n", encoding="utf-8")
    app = make_app(tmp_path, script)
    async with app.run_test(size=SIZE) as pilot:
        while len(app.worksheet.cells) < 2 or app.worksheet.cells[1].state != "running":
            await pilot.pause(0.05)
        await pilot.pause()
        assert app.query_one(StatusLine).progress == "resuming: cell 2 of 3"
        await app.until_idle()


async def test_ctrl_s_saves_the_resumed_script_with_the_new_cells(tmp_path: Path) -> None:
    script = tmp_path / "lesson.py"
    original = "# %% [markdown]\n# A lesson\n\n# %%\nbase = 10\n"
    script.write_text(original, encoding="utf-8")
    async with started(tmp_path, script) as (app, pilot):
        await run_cell(app, pilot, "extra = base * 2")
        assert app.query_one(StatusLine).unsaved == 1
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.query_one(StatusLine).unsaved == 0
    saved = script.read_text(encoding="utf-8")
    assert saved.startswith(original)
    cells = read_script(script).cells
    assert [c.source for c in cells] == ["A lesson", "base = 10", "extra = base * 2"]
    assert [c.kind for c in cells] == ["markdown", "code", "code"]
    assert not list(tmp_path.glob("*.tmp*")), "the temporary file of the atomic write is gone"


async def test_save_refuses_a_script_changed_on_disk_since_it_was_loaded(tmp_path: Path) -> None:
    script = tmp_path / "lesson.py"
    script.write_text("# %%\nbase = 10\n", encoding="utf-8")
    async with started(tmp_path, script) as (app, pilot):
        await run_cell(app, pilot, "extra = 1")
        script.write_text("# %%\nbase = 10\n# edited elsewhere, and longer\n", encoding="utf-8")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "edited elsewhere" in script.read_text(encoding="utf-8")
        assert any("changed on disk" in n.message for n in app._notifications)
        assert app.query_one(StatusLine).unsaved == 1


async def test_a_fresh_session_asks_where_to_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "w = 2")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveAsScreen)
        field = app.screen.query_one("#path")
        field.value = str(tmp_path / "mine.py")
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, SaveAsScreen)
    assert read_script(tmp_path / "mine.py").code_cells[0].source == "w = 2"


async def test_save_as_never_replaces_an_existing_file_without_a_second_enter(tmp_path: Path) -> None:
    target = tmp_path / "taken.py"
    target.write_text("precious = True\n", encoding="utf-8")
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "w = 2")
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#path").value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SaveAsScreen)
        assert target.read_text(encoding="utf-8") == "precious = True\n"
        await pilot.press("escape")
        await pilot.pause()
    assert target.read_text(encoding="utf-8") == "precious = True\n"


async def test_the_nan_check_toggle_names_the_op_that_made_the_nan_under_its_cell(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "import torch")
        assert not app.nan_check
        app.action_toggle_nan_check()
        await workers_done(app, "nan-check")
        assert app.nan_check
        await run_cell(app, pilot, "x = torch.tensor([1.0, -2.0])\ny = torch.log(x * 2)\nz = (y * 3).sum()")
        notes = [str(note.render()) for note in app.query(".note").results(Static)]
        assert any(note.startswith("the first non-finite value: torch.log made 1 nan of 2 from finite inputs, "
                                   "at In [2], line 2") for note in notes), notes
        app.action_toggle_nan_check()
        await workers_done(app, "nan-check")
        await run_cell(app, pilot, "w = torch.log(torch.tensor([-1.0]))")
        assert len([n for n in app.query(".note").results(Static) if "non-finite" in str(n.render())]) == 1


async def test_quit_with_unsaved_cells_asks_first(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "kept = 1")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmQuitScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmQuitScreen)
        assert app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
        kernel = running_kernel(app)
        await pilot.press("shift+tab", "enter")  # from Stay back to "Discard and quit"
        await quit_by_itself(app, kernel)
    assert not app.is_running


async def test_quit_without_unsaved_cells_quits_at_once(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        kernel = running_kernel(app)
        await pilot.press("ctrl+q")
        await quit_by_itself(app, kernel)
    assert not app.is_running


def running_kernel(app: GradReplApp) -> KernelProcess:
    session = app.runner.session
    assert session is not None and session.process is not None and session.process.is_alive()
    return session.process


async def quit_by_itself(app: GradReplApp, kernel: KernelProcess) -> None:
    """Inside run_test (which would end the app and its kernel anyway on the way out): the
    app asked to exit with status 0, its kernel process has ended and its journal is gone."""
    await until(lambda: app.return_code is not None, "the app asking to exit")
    assert app.return_code == 0
    assert not kernel.is_alive() and app.runner.session is not None and app.runner.session.process is None
    assert app.journal.path is None


async def test_the_backward_log_shows_each_backward_accumulating(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "import torch\nvaribale = torch.tensor([[1., 2], [3, 4]], requires_grad=True)")
        await run_cell(app, pilot, "v_out = torch.mean(varibale * varibale)")
        for _ in range(3):
            await run_cell(app, pilot, "v_out.backward(retain_graph=True)")
        log = app.query_one(BackwardLog)
        assert log.entries == 3
        entries = [str(w.render()) for w in log.query(".entry")]
        assert "fresh" in entries[0] and "→ [[0.5, 1], [1.5, 2]]" in entries[0]
        assert "accumulated" in entries[1] and "→ [[1, 2], [3, 4]]" in entries[1]
        assert "accumulated" in entries[2] and "→ [[1.5, 3], [4.5, 6]]" in entries[2]
        inspector = app.query_one(TensorInspector)
        assert inspector.changed == {"varibale": {"grad"}}


async def test_rebinding_a_name_is_a_fresh_grad_not_an_accumulated_one(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "import torch\nx = torch.ones(2, requires_grad=True)\n(x * 2).sum().backward()")
        await run_cell(app, pilot, "x = torch.ones(2, requires_grad=True)\n(x * 3).sum().backward()")
        entries = [str(w.render()) for w in app.query_one(BackwardLog).query(".entry")]
        assert len(entries) == 2 and "fresh" in entries[1] and "accumulated" not in entries[1]


async def test_selecting_a_tensor_opens_its_detail(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "import torch\na = torch.zeros(3)\nb = torch.arange(4.).reshape(2, 2)")
        await pilot.press("f2", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, TensorDetailScreen)
        assert app.screen.info.name == "b"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, TensorDetailScreen)


async def test_ctrl_c_interrupts_a_running_cell_and_names_survive(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "survivor = 5")
        app.query_one(CodeInput).load_text("print('looping', flush=True)\nwhile True:\n    pass")
        await pilot.press("ctrl+r")
        await until(lambda: printed(app, "looping"), "the loop starting")
        await pilot.press("ctrl+c")
        await until(lambda: app.runner.running is None, "the cell ending on ctrl+c")
        await app.until_idle()
        await pilot.pause()
        assert app.worksheet.cells[-1].state == "error"
        await run_cell(app, pilot, "survivor")
        assert texts(app)[-1] == "5"


async def test_restart_gives_a_fresh_namespace_and_empties_the_inspector(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "import torch\ngone = torch.ones(1)")
        assert "gone" in app.query_one(TensorInspector).tensors
        await restart(app, pilot)
        assert app.query_one(TensorInspector).tensors == {}
        await run_cell(app, pilot, "'gone' in globals()")
        assert texts(app)[-1] == "False"


async def test_toggle_pane_hides_and_shows_the_inspector(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        inspector = app.query_one(TensorInspector)
        app.action_toggle_pane("inspector")
        await pilot.pause()
        assert not inspector.display
        await pilot.press("f2")
        assert inspector.display and inspector.has_focus


def test_the_ui_process_never_imports_torch(tmp_path: Path) -> None:
    """Run a torch cell through the whole app headless; torch must stay out of this process."""
    code = textwrap.dedent(
        """
        import asyncio, sys
        from gradrepl.ui.app import GradReplApp
        from gradrepl.ui.state.history import History
        import gradrepl.cli

        async def main():
            app = GradReplApp(history=History(None), stable=True)
            async with app.run_test(size=(120, 40)) as pilot:
                await app.until_idle()
                app.query_one("#input").load_text("import torch\\nx = torch.ones(2, requires_grad=True)")
                await pilot.press("ctrl+r")
                await app.until_idle()
                await pilot.pause()
                assert "x" in app.tensors, app.tensors
        asyncio.run(main())
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


async def test_a_burst_of_keys_is_handled_in_order(tmp_path: Path) -> None:
    """Keys buffered at start-up, or typed fast, arrive together: Ctrl+J and Ctrl+R must
    act where they were typed, not after the characters queued behind them."""
    from textual import events

    async with started(tmp_path) as (app, pilot):
        code_input = app.query_one(CodeInput)
        keys = [*"a = 1", "ctrl+j", *"b = 23", "backspace", "ctrl+r", *"cd", "left", "backspace"]
        for key in keys:
            code_input.post_message(events.Key(key, key if len(key) == 1 else None))
        await app.until_idle()
        await pilot.pause()
        assert [c.source for c in app.worksheet.cells] == ["a = 1\nb = 2"]
        assert code_input.text == "d"


async def test_a_long_output_is_folded(tmp_path: Path) -> None:
    from gradrepl.ui.widgets.output_block import OutputBlock

    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "for i in range(100):\n    print('line', i)")
        folds = [b for b in app.query(OutputBlock) if b.foldable]
        assert [f.fold_title for f in folds] == ["▶ 76 more lines"]
        # Printed lines followed by an Out value: the lines still fold, their tail is shown.
        await run_cell(app, pilot, "for i in range(40):\n    print('more', i)\n'done'")
        folds = [b for b in app.query(OutputBlock) if b.foldable]
        assert len(folds) == 2 and folds[1].fold_title == "▶ 16 more lines"
        assert "more 39" in folds[1].view_text()


async def test_a_dead_kernel_is_reported_and_the_cells_are_kept(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "kept = 1")
        await run_cell(app, pilot, "import os\nos._exit(3)")
        status = app.query_one(StatusLine)
        assert status.kernel_state == "dead"
        assert app.worksheet.cells[-1].state == "died"
        assert isinstance(app.screen, KernelDiedScreen)
        assert app.screen.where == "the cell after In [1]" and app.screen.reason == "the kernel exited with code 3"
        await pilot.press("escape")
        await pilot.pause()
        assert [c.source for c in app.worksheet.cells] == ["kept = 1", "import os\nos._exit(3)"]
        await restart(app, pilot)
        assert status.kernel_state == "idle"
        await run_cell(app, pilot, "1 + 1")
        assert texts(app)[-1] == "2"


async def test_after_a_kernel_death_r_restarts_and_runs_the_good_cells_again(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "import torch\nw = torch.ones(2, requires_grad=True)")
        await run_cell(app, pilot, "1 / 0")
        await run_cell(app, pilot, "(w * 3).sum().backward()")
        await run_cell(app, pilot, "import ctypes\nctypes.string_at(0)")  # a segfault
        assert isinstance(app.screen, KernelDiedScreen)
        assert "SIGSEGV" in app.screen.reason and app.screen.good_cells == 2
        await pilot.press("enter")  # the focused button: restart and run them again
        await workers_done(app, "kernel-control")
        await app.until_idle()
        await pilot.pause()
        reruns = [c for c in app.worksheet.cells if c.rerun]
        assert [c.source for c in reruns] == ["import torch\nw = torch.ones(2, requires_grad=True)", "(w * 3).sum().backward()"]
        assert [c.state for c in reruns] == ["ok", "ok"]
        await run_cell(app, pilot, "w.grad")
        assert texts(app)[-1] == "tensor([3., 3.])"
        assert app.worksheet.unsaved == 5  # every typed cell, the dying one too: it is what was typed


async def test_themes_switch_without_losing_anything(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "value = 3")
        dark = app.export_screenshot()
        for theme in ("textual-light", "nord"):
            app.theme = theme
            await pilot.pause()
            drawn = app.export_screenshot()
            assert screen_colour(drawn) == str(app.get_theme(theme).background).lower() != screen_colour(dark)
        app.theme = "textual-dark"
        await pilot.pause()
        assert app.export_screenshot() == dark  # every pane drawn as it was: nothing lost, nothing left over
        await run_cell(app, pilot, "value")
        assert texts(app)[-1] == "3"


def screen_colour(svg: str) -> str:
    """The colour most of the drawn screen is filled with, read from a screenshot."""
    fills = re.findall(r'fill="(#[0-9a-f]{6})"', svg.lower())
    return Counter(fills).most_common(1)[0][0]


async def test_a_recalled_cell_runs_again_with_enter(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "n = 1\nn")
        await pilot.press("up", "enter")
        await app.until_idle()
        await pilot.pause()
        assert [c.source for c in app.worksheet.cells] == ["n = 1\nn", "n = 1\nn"]


async def test_enter_inside_a_cell_splits_the_line(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        code_input = app.query_one(CodeInput)
        code_input.load_text("a = 1\nb = 2")
        code_input.move_cursor((0, 5))
        await pilot.press("enter")
        assert code_input.text == "a = 1\n\nb = 2"
        assert app.worksheet.cells == []
        code_input.move_cursor((2, 2))  # on the last line, mid-line: runs, as in IPython
        await pilot.press("enter")
        await app.until_idle()
        assert [c.source for c in app.worksheet.cells] == ["a = 1\n\nb = 2"]


def test_the_app_keeps_its_history_where_the_environment_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADREPL_HISTORY", str(tmp_path / "h.jsonl"))
    app = GradReplApp()
    assert app.input_history.path == tmp_path / "h.jsonl"
    monkeypatch.delenv("GRADREPL_HISTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert GradReplApp().input_history.path == tmp_path / "state" / "gradrepl" / "history.jsonl"


@pytest.mark.parametrize("signum", [15, 1])
def test_a_terminated_app_takes_its_kernel_with_it(tmp_path: Path, signum: int) -> None:
    """SIGTERM (kill) or SIGHUP (the terminal closed): no kernel is left running."""
    import os
    import pty
    import select
    import signal
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: gradrepl on a terminal
        os.environ["GRADREPL_HISTORY"] = str(tmp_path / "h.jsonl")
        os.execv(sys.executable, [sys.executable, "-m", "gradrepl"])
    try:
        seen = b""
        deadline = time.monotonic() + 60
        while b"idle" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
        assert b"idle" in seen, "the app never showed an idle kernel"
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        kernels = [int(c) for c in children if b"gradrepl.inkernel.launch" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(kernels) == 1
        os.kill(pid, signum)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            select.select([fd], [], [], 0.2)
            try:
                os.read(fd, 65536)
            except OSError:
                pass
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        assert done, "the app did not exit"
        assert not Path(f"/proc/{kernels[0]}").exists() or "Z" in Path(f"/proc/{kernels[0]}/stat").read_text().split()[2]
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


async def test_restart_while_a_cell_ignores_interrupts_still_restarts(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.05)"
        app.query_one(CodeInput).load_text(stubborn)
        await pilot.press("ctrl+r")
        while app.runner.running is None:
            await pilot.pause(0.05)
        await restart(app, pilot)
        assert app.worksheet.cells[-1].state == "died"
        assert app.worksheet.cells[-1].reason == "stopped by the kernel restart"
        assert not any("died" in n.message for n in app._notifications)
        assert app.query_one(StatusLine).kernel_state == "idle"
        await run_cell(app, pilot, "'fresh'")
        assert texts(app)[-1] == "'fresh'"


async def test_run_all_runs_the_script_and_the_typed_cells_again_in_order(tmp_path: Path) -> None:
    script = tmp_path / "lesson.py"
    script.write_text("# %%\ncount = 0\n\n# %%\ncount += 1\n", encoding="utf-8")
    async with started(tmp_path, script) as (app, pilot):
        await run_cell(app, pilot, "count += 10")
        await run_cell(app, pilot, "count")
        assert texts(app)[-1] == "11"
        app.action_run_all()
        await app.until_idle()
        await pilot.pause()
        assert [c.source for c in app.worksheet.cells[4:]] == ["count = 0", "count += 1", "count += 10", "count"]
        assert texts(app)[-1] == "11"
        assert app.worksheet.unsaved == 2  # the re-runs are not new cells of the script


async def test_a_known_autograd_error_is_explained_under_it(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "import torch\nm = torch.ones(2, 2, requires_grad=True) * 2")
        await run_cell(app, pilot, "m.backward()")
        [box] = app.query(".explain")
        text = str(box.render())
        assert text.startswith("m.backward() needs a gradient in In [2]: m is not a single number (shape 2x2)")
        assert "Fix: pass gradient= shaped like m" in text


async def _graph_screen(app: GradReplApp, pilot: Pilot) -> AutogradGraphScreen:
    screen = app.screen
    assert isinstance(screen, AutogradGraphScreen)
    for _ in range(200):
        if screen.graph is not None:
            break
        await pilot.pause(0.05)
    await pilot.pause()
    return screen


async def test_g_on_a_tensor_shows_its_autograd_graph_with_in_place_marks(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "import torch\nx = torch.ones(3, requires_grad=True)\na = x * 3\n"
                                   "b = (a.sin() * a).sum()\na.add_(1)")
        inspector = app.query_one(TensorInspector)
        await pilot.press("f2")
        inspector.move_cursor(row=list(inspector.tensors).index("b"))
        await pilot.press("g")
        screen = await _graph_screen(app, pilot)
        labels = tree_labels(screen)
        assert labels[:2] == ["#0 SumBackward0 → b", "#1 MulBackward0"]
        assert "#4 AccumulateGrad → x (leaf, 3 float32)" in labels
        assert sum("⚠ modified in place" in label for label in labels) == 2
        assert "backward through this graph will fail" in str(screen.query_one("#graph-status").render())
        # The node reached a second time is a reference; Enter on it goes to the node itself.
        view = screen.query_one(GraphView)
        ref = next(index for index, row in enumerate(view.rows) if row.text.endswith("(drawn below)"))
        view.cursor = view.shown.index(ref)
        await pilot.press("enter")
        await pilot.pause()
        assert view.cursor_row == view.node_row(3)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, AutogradGraphScreen)


async def test_the_detail_screen_leads_to_the_graph(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "import torch\nx = torch.ones(2, requires_grad=True)\ny = (x * x).sum()")
        inspector = app.query_one(TensorInspector)
        await pilot.press("f2")
        inspector.move_cursor(row=list(inspector.tensors).index("y"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TensorDetailScreen)
        await pilot.press("g")
        screen = await _graph_screen(app, pilot)
        assert screen.tensor_name == "y"
        assert tree_labels(screen)[0] == "#0 SumBackward0 → y"


async def test_a_new_name_for_a_tensor_is_not_logged_as_a_grad_change(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "import torch\nx = torch.ones(2, requires_grad=True)\n(x * 2).sum().backward()")
        await run_cell(app, pilot, "c = x")
        assert app.query_one(BackwardLog).entries == 1
        await run_cell(app, pilot, "c.grad.zero_()")
        entries = [str(w.render()) for w in app.query_one(BackwardLog).query(".entry")]
        # c and x are one tensor (one inspector row, "x (= c)"): one grad, zeroed once
        assert len(entries) == 2 and entries[1].count("grad zeroed") == 1 and "x.grad zeroed" in entries[1]


async def test_enter_on_a_backward_entry_opens_it_with_the_vector_jacobian_view(tmp_path: Path) -> None:
    from gradrepl.ui.screens.backward_event import BackwardEventScreen
    from gradrepl.ui.widgets.backward_log import BackwardEntry

    async with started(tmp_path, ROOT / "examples" / "seed_autograd.py") as (app, pilot):
        await pilot.press("f3")
        await pilot.pause()
        entries = list(app.query(BackwardEntry))
        assert app.focused is entries[-1]
        await pilot.press("up")
        assert app.focused is entries[-2]
        assert "x.grad += vᵀ·J = [4, 0.4, 0.02, 0.002]" in str(entries[-2].render())
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BackwardEventScreen)
        assert screen.event.roots[0].name == "z"
        from gradrepl.ui.screens.backward_event import vjp_view

        screen.query_one("#vjp", Static)
        view = rendered(vjp_view(screen.event))
        assert "J of z with respect to x ✓ x.grad gained exactly vᵀ·J" in view
        rows = {line.split("]")[0].strip() + "]": line.split("]", 1)[1].split() for line in view.splitlines() if "∂z[" in line}
        assert rows["∂z[0, 0]"] == ["2", "2", "0", "0", "0"] and rows["∂z[1, 1]"] == ["0.001", "0", "0", "0", "2"]
        assert [line.split()[1:] for line in view.splitlines() if line.strip().startswith("vᵀ·J")] == [["4", "0.4", "0.02", "0.002"]]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, BackwardEventScreen)


async def test_a_kernel_that_dies_between_cells_is_reported_at_once(tmp_path: Path) -> None:
    async with started(tmp_path) as (app, pilot):
        await run_cell(app, pilot, "kept = 1")
        process = app.runner.kernel_process
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        status = app.query_one(StatusLine)
        await until(lambda: status.kernel_state == "dead", "the death shown with no cell run", timeout=15)
        assert status.kernel_reason == "the kernel was killed by SIGKILL"
        await restart(app, pilot)
        await run_cell(app, pilot, "'fresh'")
        assert texts(app)[-1] == "'fresh'"
