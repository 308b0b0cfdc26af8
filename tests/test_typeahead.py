"""Keys typed while the app starts keep their meaning: Enter typed before Textual has the
terminal in raw mode runs the cell (the tty had turned it into Ctrl+J, a newline)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual import events
from textual.drivers.linux_driver import LinuxDriver

from gradrepl.ui.typeahead import driver_with_typeahead, keep_typeahead


@pytest.fixture
def tty() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal in cooked mode, as a shell leaves it: (the keyboard side, the app side)."""
    keyboard, app_side = pty.openpty()
    attrs = termios.tcgetattr(app_side)
    attrs[0] |= termios.ICRNL
    attrs[3] |= termios.ICANON
    termios.tcsetattr(app_side, termios.TCSANOW, attrs)
    yield keyboard, app_side
    os.close(keyboard)
    os.close(app_side)


def test_finished_lines_typed_before_start_up_come_back_with_enter_as_cr(tty: tuple[int, int]) -> None:
    keyboard, app_side = tty
    os.write(keyboard, b"x = 1\ry = 2\r")
    time.sleep(0.1)
    terminal = keep_typeahead(app_side)
    assert terminal is not None
    assert terminal.typeahead == "x = 1\ry = 2\r"


def test_a_line_still_being_typed_stays_for_the_driver_and_later_enter_stays_cr(tty: tuple[int, int]) -> None:
    keyboard, app_side = tty
    os.write(keyboard, b"z = 3")
    time.sleep(0.1)
    terminal = keep_typeahead(app_side)
    assert terminal is not None and terminal.typeahead == ""
    os.write(keyboard, b"\r")
    attrs = termios.tcgetattr(app_side)
    attrs[3] &= ~termios.ICANON  # what Textual's driver does next
    termios.tcsetattr(app_side, termios.TCSANOW, attrs)
    time.sleep(0.1)
    assert os.read(app_side, 100) == b"z = 3\r"


def test_the_terminal_gets_its_settings_back(tty: tuple[int, int]) -> None:
    _, app_side = tty
    before = termios.tcgetattr(app_side)
    terminal = keep_typeahead(app_side)
    assert terminal is not None
    assert not termios.tcgetattr(app_side)[0] & termios.ICRNL
    terminal.restore()
    assert termios.tcgetattr(app_side) == before


def test_not_a_terminal_is_left_alone(tmp_path: Path) -> None:
    with open(tmp_path / "in", "w+") as file:
        assert keep_typeahead(file.fileno()) is None


@pytest.mark.parametrize(("typeahead", "keys"), [("a\r", ["a", "enter"]), ("", []), ("\x1b", ["escape"])])
def test_the_driver_reads_the_typeahead_as_keys_before_the_terminal(
    monkeypatch: pytest.MonkeyPatch, typeahead: str, keys: list[str]
) -> None:
    seen: list[object] = []
    monkeypatch.setattr(LinuxDriver, "run_input_thread", lambda self: seen.append("terminal"))
    driver_class = driver_with_typeahead(typeahead)
    driver = driver_class.__new__(driver_class)
    monkeypatch.setattr(driver, "process_message", seen.append, raising=False)
    driver.run_input_thread()
    assert [item.key if isinstance(item, events.Key) else item for item in seen] == [*keys, "terminal"]


def _cell_in_journal(journal: Path, source: str) -> bool:
    return any(f'"cell": "{source}"' in path.read_text() for path in journal.glob("*") if path.is_file())


@pytest.mark.kernel
@pytest.mark.parametrize("typed_at_once", [True, False], ids=["typed-before-start", "typed-after-drawing"])
def test_a_cell_typed_with_enter_runs_in_a_real_terminal(tmp_path: Path, typed_at_once: bool) -> None:
    """End to end, in a pseudo-terminal: `x = 1` Enter typed before the app has drawn, or after."""
    keyboard, app_side = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "GRADREPL_JOURNAL_DIR": str(tmp_path / "journal")}
    if typed_at_once:
        os.write(keyboard, b"x = 1\r")
    app = subprocess.Popen([sys.executable, "-m", "gradrepl"], stdin=app_side, stdout=app_side, stderr=app_side,
                           cwd=tmp_path, env=env, start_new_session=True)
    os.close(app_side)
    screen = b""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and app.poll() is None:
            if select.select([keyboard], [], [], 0.2)[0]:
                try:
                    screen += os.read(keyboard, 1 << 16)  # read, so the app never blocks drawing
                except OSError:
                    break
            if not typed_at_once and b"PyTorch code here" in screen:
                os.write(keyboard, b"x = 1\r")
                typed_at_once = True
            if _cell_in_journal(tmp_path / "journal", "x = 1"):
                break
        assert app.poll() is None, screen[-2000:].decode(errors="replace")
        assert _cell_in_journal(tmp_path / "journal", "x = 1")
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(timeout=20)
        finally:
            if app.poll() is None:
                app.kill()
            os.close(keyboard)
