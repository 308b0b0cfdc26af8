"""The recover offer: keys typed while it appears go to the input, never to a choice, and the
left-over journal goes only on an explicit choice (kernel-free: a recorded session)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from gradrepl.ui.app import GradReplApp
from gradrepl.ui.state.history import History
from gradrepl.ui.state.journal import Journal
from gradrepl.ui.widgets import recover_offer
from gradrepl.ui.widgets.code_input import CodeInput
from support.recorded_app import kernel_free, session_of, settled, ui_caught_up
from support.recorded_session import RecordedSession
from support.recording import load
from support.waiting import until

TYPED = "do_this = 1"  # a 'd' and an 'r' among the keys: the old dialog's Discard and Run again
LEFT = "answer = 6 * 7"
STARTED = 1_780_000_000.0  # a fixed start time for the snapshot


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def left_journal(folder: Path, *cells: str, script: Path | None = None, started: float | None = None) -> Path:
    """A journal as a killed app leaves it: its cells, its pid gone."""
    journal = Journal(folder, script)
    for source in cells:
        journal.cell_started(source)
    return orphan_journal(journal, dead_pid(), started)


def orphan_journal(journal: Journal, pid: int, started: float | None = None) -> Path:
    assert journal.path is not None
    lines = journal.path.read_text().splitlines()
    header = json.loads(lines[0]) | {"pid": pid}
    if started is not None:
        header["started"] = started
    journal.path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    return journal.path


def app_on(folder: Path, scenario: str = "recover_typed_ahead") -> GradReplApp:
    app = GradReplApp(
        history=History(None),
        journal=Journal(folder),
        stable=True,
        session_factory=RecordedSession.factory(load(scenario), pace=lambda: ui_caught_up(app)),
    )
    return app


def offer_shown(app: GradReplApp) -> bool:
    """Its buttons are laid out on screen and in the screen's focus chain (Tab and Shift+Tab reach
    them). The chain is sorted by screen position, so a button not yet laid out sorts first."""
    buttons = list(app.query("RecoverOffer Button"))
    chain = app.screen.focus_chain
    return bool(buttons) and all(button in chain and button.region.height > 0 for button in buttons)


async def type_keys(pilot: Pilot, text: str) -> None:
    await pilot.press(*["space" if ch == " " else ch for ch in text])


async def test_keys_typed_as_the_offer_appears_reach_the_input_and_keep_the_journal(tmp_path: Path) -> None:
    journal = left_journal(tmp_path, LEFT)
    app = app_on(tmp_path)
    with kernel_free(app):
        async with app.run_test() as pilot:
            await type_keys(pilot, TYPED[:3])  # before the panes and the offer are there
            await until(lambda: app._panes_ready, "the panes mounted")
            await pilot.pause()
            await type_keys(pilot, TYPED[3:])
            await pilot.press("enter")
            await settled(pilot)
            assert session_of(app).executed == [TYPED]
            assert journal.exists(), "the left-over journal went without a choice"
            assert offer_shown(app) and isinstance(app.focused, CodeInput)
            assert len(app.screen_stack) == 1, "a modal screen took the keys"


async def test_run_again_by_keyboard_runs_the_left_cells_after_the_typed_one(tmp_path: Path) -> None:
    journal = left_journal(tmp_path, LEFT)
    app = app_on(tmp_path)
    with kernel_free(app):
        async with app.run_test() as pilot:
            await until(lambda: offer_shown(app), "the offer shown")
            await type_keys(pilot, TYPED)
            await pilot.press("enter")
            await settled(pilot)
            await pilot.press("shift+tab", "shift+tab", "shift+tab")  # Later, Discard, then Run again
            assert app.focused is not None and app.focused.id == "recover-run"
            await pilot.press("enter")
            await settled(pilot)
            assert not offer_shown(app) and isinstance(app.focused, CodeInput)
            app.query_one(CodeInput).load_text("print(answer + do_this)")
            await pilot.press("ctrl+r")
            await settled(pilot)
            assert session_of(app).executed == [TYPED, LEFT, "print(answer + do_this)"]
            assert not journal.exists()  # this session's journal has the cell now
            assert app.journal.path is not None and LEFT in app.journal.path.read_text()


async def test_escape_on_the_offer_keeps_the_journal_for_next_time(tmp_path: Path) -> None:
    journal = left_journal(tmp_path, LEFT)
    app = app_on(tmp_path)
    with kernel_free(app):
        async with app.run_test() as pilot:
            await until(lambda: offer_shown(app), "the offer shown")
            await pilot.press("shift+tab")
            assert app.focused is not None and app.focused.id == "recover-later"
            await pilot.press("escape")
            await pilot.pause()
            assert not offer_shown(app) and isinstance(app.focused, CodeInput)
            assert journal.exists()
    assert Journal(tmp_path).left_over() is not None


async def test_discard_takes_a_click_and_removes_the_journal(tmp_path: Path) -> None:
    journal = left_journal(tmp_path, LEFT)
    app = app_on(tmp_path)
    with kernel_free(app):
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: offer_shown(app), "the offer shown")
            await pilot.pause()
            await pilot.click("#recover-discard")
            await pilot.pause()
            assert not offer_shown(app) and not journal.exists()
            assert session_of(app).executed == []


def test_snapshot_the_offer_with_typed_ahead_keys_in_the_input(
    tmp_path: Path, snap_compare: Callable[..., bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offer above the input, in a warning border: what was left (two cells, their first
    lines), three buttons and the hint; the input below it holds `do_this = 1`, typed while
    the offer appeared, with the cursor after it. Nothing has run: 0 cells."""
    monkeypatch.setattr(recover_offer.time, "localtime", time.gmtime)
    left_journal(tmp_path, LEFT, "for i in range(3):\n    print(i)", started=STARTED)
    app = app_on(tmp_path)

    async def type_ahead(pilot: Pilot) -> None:
        await type_keys(pilot, TYPED[:3])
        await until(lambda: offer_shown(app), "the offer shown")
        await type_keys(pilot, TYPED[3:])
        await settled(pilot)

    with kernel_free(app):
        assert snap_compare(app, terminal_size=(120, 40), run_before=type_ahead)


async def test_after_a_choice_the_next_older_left_over_session_is_offered(tmp_path: Path) -> None:
    older = left_journal(tmp_path, "older = 1", started=STARTED)
    newer = left_journal(tmp_path, LEFT, started=STARTED + 60)
    app = app_on(tmp_path)
    with kernel_free(app):
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: offer_shown(app), "the offer shown")
            offer = app.query_one(recover_offer.RecoverOffer)
            assert offer.left.cells == (LEFT,) and "(and 1 older one, offered after this one)" in recover_offer.describe(
                offer.left, offer.older)
            await pilot.click("#recover-discard")
            await until(lambda: offer_shown(app) and app.query_one(recover_offer.RecoverOffer) is not offer,
                        "the older session offered")
            assert not newer.exists() and older.exists()
            offer = app.query_one(recover_offer.RecoverOffer)
            assert offer.left.cells == ("older = 1",) and offer.older == 0
            await pilot.click("#recover-later")
            await pilot.pause()
            assert not offer_shown(app) and older.exists()
