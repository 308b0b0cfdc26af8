"""Saved scripts reproduce the session: cells that were interrupted, timed out, killed the
kernel or ran before a restart are saved with a skip marker on their `# %%` line, and resuming
(the app) or replaying the file does not run them. Kernel-free."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gradrepl.cells import Script, parse_percent, render_percent, skip_reason
from gradrepl.client.events import CellFinished, Error
from gradrepl.headless.replay import CellRecord, TextWriter, replay
from gradrepl.ui.state.worksheet import SessionCell, Worksheet
from support.recorded_app import kernel_free, recorded_app, settled

MARKER = '# %% tags=["skip-execution"] gradrepl_skipped="interrupted"'


def ran(sheet: Worksheet, source: str, state: str, count: int | None, *, ename: str = "", rerun: bool = False,
        script_line: int | None = None) -> SessionCell:
    cell = sheet.add(source, script_line, rerun=rerun)
    if ename:
        cell.events.append(Error(ename, ""))
    finished = CellFinished(state, count)  # type: ignore[arg-type]
    cell.events.append(finished)
    cell.finish(finished)
    return cell


def saved(sheet: Worksheet) -> str:
    return render_percent(sheet.document())


def test_the_skip_marker_reads_back_and_keeps_the_other_metadata() -> None:
    script = parse_percent(f'# %% Title tags=["slow"] other=3\nx = 1\n\n{MARKER}\nwhile True: pass\n')
    first, second = script.cells
    assert skip_reason(first) is None and dict(first.metadata) == {"tags": '["slow"]', "other": "3"}
    assert skip_reason(second) == "interrupted"
    assert render_percent(script) == f'# %% Title tags=["slow"] other=3\nx = 1\n\n{MARKER}\nwhile True: pass\n'


def test_interrupted_timed_out_and_fatal_cells_are_saved_skipped() -> None:
    sheet = Worksheet()
    ran(sheet, "a = 1", "ok", 1)
    ran(sheet, "while True: pass", "error", 2, ename="KeyboardInterrupt")
    ran(sheet, "1 / 0", "error", 3, ename="ZeroDivisionError")
    ran(sheet, "import time; time.sleep(99)", "timeout", 4)
    ran(sheet, "b = 2", "ok", 5)
    assert saved(sheet) == (
        "# %%\na = 1\n\n"
        f"{MARKER}\nwhile True: pass\n\n"
        "# %%\n1 / 0\n\n"
        '# %% tags=["skip-execution"] gradrepl_skipped="timed out"\nimport time; time.sleep(99)\n\n'
        "# %%\nb = 2\n"
    )


def test_cells_before_a_kernel_death_are_skipped_as_before_restart() -> None:
    sheet = Worksheet()
    ran(sheet, "a = 1", "ok", 1)
    ran(sheet, "import os; os._exit(1)", "died", None)
    ran(sheet, "b = 2", "ok", 1)
    assert saved(sheet) == (
        '# %% tags=["skip-execution"] gradrepl_skipped="before restart"\na = 1\n\n'
        '# %% tags=["skip-execution"] gradrepl_skipped="killed the kernel"\nimport os; os._exit(1)\n\n'
        "# %%\nb = 2\n"
    )


def test_a_restart_seen_as_in_n_counting_from_one_again_skips_what_came_before() -> None:
    sheet = Worksheet()
    ran(sheet, "a = 1", "ok", 1)
    ran(sheet, "b = 2", "ok", 2)
    ran(sheet, "c = 3", "ok", 1)  # the first cell of a fresh kernel
    text = saved(sheet)
    assert text.count('gradrepl_skipped="before restart"') == 2
    assert text.endswith("# %%\nc = 3\n")



def test_a_restart_the_app_asked_for_skips_what_came_before_even_with_no_cell_after_it() -> None:
    sheet = Worksheet()
    ran(sheet, "a = 1", "ok", 1)
    ran(sheet, "b = 2", "ok", 2)
    sheet.restarted_at = len(sheet.cells)  # what app.restart_kernel records
    assert saved(sheet).count('gradrepl_skipped="before restart"') == 2

def test_cells_run_again_after_a_restart_count_once_and_are_not_skipped() -> None:
    sheet = Worksheet()
    ran(sheet, "a = 1", "ok", 1)
    ran(sheet, "while True: pass", "error", 2, ename="KeyboardInterrupt")
    ran(sheet, "a = 1", "ok", 1, rerun=True)  # restart, then the ok cells run again
    ran(sheet, "b = a + 1", "ok", 2)
    assert saved(sheet) == f"# %%\na = 1\n\n{MARKER}\nwhile True: pass\n\n# %%\nb = a + 1\n"


def test_a_resumed_scripts_cells_are_marked_in_place_and_the_rest_kept_byte_for_byte(tmp_path: Path) -> None:
    text = "# A lesson\n\n# %% Setup\nx = 1\n\n# %% [markdown]\n# Loop\n\n# %%\nwhile True: pass\n"
    script = parse_percent(text)
    sheet = Worksheet(Script(tmp_path / "lesson.py", "percent", script.cells, script.preamble))
    ran(sheet, "x = 1", "ok", 1, script_line=4)
    ran(sheet, "while True: pass", "error", 2, ename="KeyboardInterrupt", script_line=10)
    assert saved(sheet) == f"# %% Setup\nx = 1\n\n# %% [markdown]\n# Loop\n\n{MARKER}\nwhile True: pass\n"


class NoKernel:
    """A session for replay that fails the test if a cell is sent to it."""

    async def start(self) -> None:
        pass

    async def run(self, code: str, **kwargs: Any) -> Any:
        raise AssertionError(f"replay ran a skipped cell: {code!r}")

    async def shutdown(self) -> None:
        pass


def test_replay_skips_marked_cells_and_says_so_in_text_and_json(tmp_path: Path) -> None:
    script = parse_percent(f"{MARKER}\nwhile True: pass\n")
    records: list[CellRecord] = []
    code = asyncio.run(replay(script, records.append, session=NoKernel()))  # type: ignore[arg-type]
    assert code == 0
    (record,) = records
    assert record.to_json()["status"] == "skipped" and record.to_json()["reason"] == "interrupted"
    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        TextWriter(stream, "lesson.py", color=False)(record)
    assert "[not run (skipped: interrupted)]" in out.read_text()


def test_the_readme_lists_the_skipped_status() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "`skipped`" in readme and 'tags=["skip-execution"]' in readme


async def test_resuming_a_saved_file_shows_its_skipped_cells_without_running_them(tmp_path: Path) -> None:
    path = tmp_path / "lesson.py"
    text = f'{MARKER}\nwhile True: pass\n\n# %% tags=["skip-execution"] gradrepl_skipped="killed the kernel"\nimport os; os._exit(1)\n'
    path.write_text(text)
    app = recorded_app(None, script=path)  # an empty recording: any cell sent would fail
    with kernel_free(app):
        async with app.run_test() as pilot:
            await settled(pilot)
            cells = app.worksheet.cells
            assert [(c.state, c.reason) for c in cells] == [
                ("cancelled", "skipped: interrupted"), ("cancelled", "skipped: killed the kernel"),
            ]
            shown = [  # each view's parts, top to bottom: the note comes below the source
                [str(part.render()) if part.has_class("note") else " ".join(sorted(part.classes)) for part in view.children]
                for view in app.transcript.query("CellView")
            ]
            assert shown == [
                ["prompt", "source", "not run (skipped: interrupted)"],
                ["prompt", "source", "not run (skipped: killed the kernel)"],
            ]
            assert app.save_to(path)
    assert path.read_text() == text
