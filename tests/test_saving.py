"""Saving: the journal follows the file saved to, the history is private, a new file name
starts an empty session that saves to it (kernel-free where the app runs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gradrepl.ui.state.history import History
from gradrepl.ui.state.journal import Journal
from support.recorded_app import kernel_free, run_cell, settled
from test_recover_offer import app_on, dead_pid, orphan_journal

if TYPE_CHECKING:
    from textual.pilot import Pilot

    from gradrepl.ui.app import GradReplApp


async def test_after_save_as_the_journal_is_the_files_and_holds_only_the_unsaved_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    journals = tmp_path / "journal"
    app = app_on(journals)
    notes: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **kwargs: notes.append(str(message)))
    with kernel_free(app):
        async with app.run_test() as pilot:
            await settled(pilot)
            await run_cell(pilot, "do_this = 1")
            assert app.save_to(tmp_path / "session.py")
            await run_cell(pilot, "answer = 6 * 7")
            orphan_journal(app.journal, dead_pid())  # as if killed here: no clean quit
    assert "Saved 1 cell to session.py." in notes
    assert "do_this = 1" in (tmp_path / "session.py").read_text()
    assert Journal(journals).left_over() is None
    left = Journal(journals, tmp_path / "session.py").left_over()
    assert left is not None and left.cells == ("answer = 6 * 7",)


def test_the_history_file_is_private(tmp_path: Path) -> None:
    history = History(tmp_path / "state" / "history.jsonl")
    history.add("secret = 1")
    assert ((tmp_path / "state").stat().st_mode & 0o777) == 0o700
    assert ((tmp_path / "state" / "history.jsonl").stat().st_mode & 0o777) == 0o600


def test_a_file_that_does_not_exist_yet_starts_an_empty_session_that_saves_to_it(tmp_path: Path) -> None:
    from gradrepl.cli import _new_script
    from gradrepl.ui.state.worksheet import Worksheet

    script = _new_script(str(tmp_path / "new.py"))
    assert script is not None and script.code_cells == ()
    worksheet = Worksheet(script)
    assert worksheet.path == tmp_path / "new.py"
    cell = worksheet.add("x = 1")
    cell.state = "ok"
    worksheet.save(worksheet.path)
    assert "x = 1" in (tmp_path / "new.py").read_text()
    assert _new_script(str(tmp_path / "missing" / "new.py")) is None  # no such folder: the usual error
    assert _new_script(str(tmp_path / "new.py")) is None  # it exists now: read as usual


async def save_as_opened(app: GradReplApp, pilot: Pilot) -> None:
    from gradrepl.ui.screens.save_as import SaveAsScreen

    await settled(pilot)
    app.action_save_as()
    await pilot.pause()
    assert isinstance(app.screen, SaveAsScreen)


async def test_the_save_as_dialog_names_the_folder_it_saves_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import Label

    monkeypatch.chdir(tmp_path)
    app = app_on(tmp_path / "journal")
    with kernel_free(app):
        async with app.run_test() as pilot:
            await save_as_opened(app, pilot)
            assert str(tmp_path) in str(app.screen.query_one("#folder", Label).render())


@pytest.mark.parametrize(("burst", "expected"), [
    (["ctrl+u", *"session.py"], "session.py"),  # clear the suggestion, type a name
    ([*"abc", "left", "left", "X"], "aXbc"),  # the suggestion replaced, then edited
], ids=["ctrl+u-then-name", "left-then-insert"])
async def test_keys_typed_fast_in_the_save_as_dialog_act_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, burst: list[str], expected: str
) -> None:
    """A terminal delivers fast typing as one burst, queued before any key is handled;
    pilot.press would wait after each key and hide the order problem."""
    from textual import events
    from textual.widgets import Input

    monkeypatch.chdir(tmp_path)
    app = app_on(tmp_path / "journal")
    with kernel_free(app):
        async with app.run_test() as pilot:
            await save_as_opened(app, pilot)
            for key in burst:
                character = key if len(key) == 1 else ("\x15" if key == "ctrl+u" else None)
                app.post_message(events.Key(key, character))
            await pilot.pause()
            assert app.screen.query_one("#path", Input).value == expected
