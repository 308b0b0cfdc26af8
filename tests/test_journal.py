"""The session journal: typed cells survive an app that is killed, and come back once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.terminal import Terminal
from gradrepl.ui.state.journal import Journal


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def orphan(journal: Journal, pid: int) -> None:
    """Make the journal look like one whose app was killed."""
    assert journal.path is not None
    lines = journal.path.read_text().splitlines()
    header = json.loads(lines[0]) | {"pid": pid}
    journal.path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")


def test_cells_of_a_killed_session_are_offered_back_to_the_next(tmp_path: Path) -> None:
    first = Journal(tmp_path)
    first.cell_started("a = 1")
    first.cell_started("b = a + 1")
    orphan(first, dead_pid())
    left = Journal(tmp_path).left_over()
    assert left is not None and left.cells == ("a = 1", "b = a + 1") and left.script is None
    left.discard()
    assert Journal(tmp_path).left_over() is None


def test_only_cells_after_the_last_save_come_back(tmp_path: Path) -> None:
    first = Journal(tmp_path)
    first.cell_started("a = 1")
    first.saved(1)
    first.cell_started("b = 2")
    with open(first.path, "a") as file:  # the kill cut the last line short
        file.write('{"cell": "c =')
    orphan(first, dead_pid())
    left = Journal(tmp_path).left_over()
    assert left is not None and left.cells == ("b = 2",)


def test_a_clean_quit_a_live_app_or_another_script_offers_nothing(tmp_path: Path) -> None:
    script = tmp_path / "lesson.py"
    live = Journal(tmp_path, script)
    live.cell_started("x = 1")  # this process is alive: its session is not left over
    assert Journal(tmp_path, script).left_over() is None
    orphan(live, dead_pid())
    assert Journal(tmp_path).left_over() is None  # a fresh session is not that script's
    assert Journal(tmp_path, script).left_over() is not None
    quitter = Journal(tmp_path)
    quitter.cell_started("y = 2")
    quitter.close()
    assert quitter.path is None and len(list(tmp_path.glob("*.jsonl"))) == 1


def test_journals_are_private_and_a_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(tmp_path / "j")
    journal.cell_started("secret = 1")
    assert journal.path is not None
    assert (journal.path.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "j").stat().st_mode & 0o777) == 0o700
    blocked = tmp_path / "file"
    blocked.write_text("")
    broken = Journal(blocked / "j")  # its folder cannot be made
    broken.cell_started("a = 1")
    assert broken.error is not None and "\n" not in broken.error
    said = broken.error
    with monkeypatch.context() as patched:  # from now on it keeps working without a journal: no more tries
        patched.setattr(Path, "mkdir", lambda *args, **kwargs: pytest.fail("the broken journal tried its folder again"))
        patched.setattr(os, "open", lambda *args, **kwargs: pytest.fail("the broken journal tried to write again"))
        broken.cell_started("b = 2")
        broken.saved(2)
    assert broken.error == said and broken.path is None
    assert broken.left_over() is None


@pytest.mark.kernel
def test_an_app_killed_with_sigkill_offers_its_cells_at_the_next_start(
    tmp_path: Path, gradrepl_terminal: Callable[..., Terminal]
) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    app = gradrepl_terminal(env=env)
    app.wait_for("idle")
    app.type("answer = 6 * 7\r")
    app.wait_for("1 cell run")
    app.kill()
    app = gradrepl_terminal(env=env)
    app.type("typed = 1\r")  # at once, before the offer is drawn: the input has the keys
    app.wait_for("1 cell run")
    journals = Journal(tmp_path / "state" / "gradrepl" / "journal")
    left = journals.left_over()
    assert left is not None and left.cells == ("answer = 6 * 7",)  # kept until a choice is made
    choose_run_them_again(app)
    app.wait_for("2 cells run")
    app.type("print(answer + typed)\r")
    app.wait_for("43")
    assert journals.left_over() is None


def choose_run_them_again(app: Terminal) -> None:
    """Shift+Tab to "Run them again here", then Enter. One key at a time, each after the
    button it focuses is drawn: keys typed together all reach the widget that had the focus
    when they came (the input), as Textual forwards a key before the one ahead moved the focus."""
    for button in ("Later", "Discard them", "Run them again here"):
        app.type("\x1b[Z")
        app.wait_for(button)
    app.type("\r")


def test_the_journal_follows_the_file_the_session_is_saved_to(tmp_path: Path) -> None:
    script = tmp_path / "session.py"
    first = Journal(tmp_path)  # a fresh session
    first.cell_started("a = 1")
    first.cell_started("b = a + 1")
    first.saved(2, script)  # Ctrl+S to session.py
    first.cell_started("c = b + 1")
    first.cell_started("d = c + 1")
    orphan(first, dead_pid())
    assert Journal(tmp_path).left_over() is None  # a fresh session gets nothing that needs a and b
    left = Journal(tmp_path, script).left_over()  # `gradrepl session.py` runs a and b, then offers these
    assert left is not None and left.cells == ("c = b + 1", "d = c + 1") and left.script == str(script.resolve())


def test_a_save_before_any_cell_ran_names_the_file_in_the_header(tmp_path: Path) -> None:
    script = tmp_path / "new.py"
    first = Journal(tmp_path)
    first.saved(0, script)
    first.cell_started("x = 1")
    orphan(first, dead_pid())
    left = Journal(tmp_path, script).left_over()
    assert left is not None and left.cells == ("x = 1",)
