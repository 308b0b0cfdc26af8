"""Files that are not scripts (devices, FIFOs, directories), scripts too big to read, empty
scripts, and SIGTERM while the app is busy with a big one: each ends in bounded time with
one line (issue 11 item 5, issue 12 items 1 and 19)."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

from gradrepl.cells import ScriptError, read_script
from gradrepl.cells.reading import SCRIPT_LIMIT
from support.command_line import gradrepl as run_gradrepl

gradrepl = partial(run_gradrepl, timeout=60)

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("command", ["replay", "graph", None])
@pytest.mark.parametrize("target, reason", [
    ("/dev/zero", "is a character device, not a regular file"),
    ("/dev/null", "is a character device, not a regular file"),
    ("fifo.py", "is a FIFO (named pipe), not a regular file"),
    ("big.py", "too big (5.0 MB): gradrepl reads scripts up to 4.0 MB"),
    ("link.py", "too big (5.0 MB): gradrepl reads scripts up to 4.0 MB"),
])
def test_only_regular_files_up_to_the_bound_are_read(tmp_path: Path, command: str | None, target: str,
                                                     reason: str) -> None:
    os.mkfifo(tmp_path / "fifo.py")
    (tmp_path / "big.py").write_bytes(b"x = 1\n" * (5 * (1 << 20) // 6) + b"x = 1\n"[: 5 * (1 << 20) % 6])
    (tmp_path / "link.py").symlink_to(tmp_path / "big.py")
    done = gradrepl(*([command] if command else []), target, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"gradrepl: cannot read '{target}': {reason}\n"


def test_a_script_at_the_bound_is_read_and_a_symlink_to_a_script_too(tmp_path: Path) -> None:
    path = tmp_path / "edge.py"
    path.write_bytes(b"x = 1  # " + b"." * (SCRIPT_LIMIT - 10) + b"\n")
    (tmp_path / "link.py").symlink_to(path)
    assert len(read_script(tmp_path / "link.py").cells) == 1
    path.write_bytes(b"x = 1  # " + b"." * (SCRIPT_LIMIT - 9) + b"\n")
    with pytest.raises(ScriptError, match="too big"):
        read_script(path)


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_an_empty_script_is_nothing_to_run_for_replay_and_graph_alike(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.py"
    path.write_text(text)
    for command in ("replay", "graph"):
        done = gradrepl(command, str(path))
        assert (command, done.returncode, done.stdout) == (command, 0, "")
        assert done.stderr == f"gradrepl: '{path}' has no code cells: nothing to run\n"
    done = gradrepl("graph", str(path), "y")
    assert done.returncode == 2 and "no code cells" in done.stderr


def test_the_app_refuses_a_script_of_more_cells_than_it_resumes_in_one_line(tmp_path: Path) -> None:
    """A 4 MB script of 380,000 cells held the app at "kernel starting" for minutes at half a
    gigabyte: it is refused at once, with one line naming replay, which runs any."""
    from gradrepl.cli import MAX_APP_CELLS

    path = tmp_path / "cells.py"
    path.write_bytes(b"# %\x25\nx = 1\n" * ((SCRIPT_LIMIT - 1) // 11))
    done = run_gradrepl(str(path), timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"gradrepl: '{path}' has {(SCRIPT_LIMIT - 1) // 11:,} cells: the app resumes scripts of up "
                           f"to {MAX_APP_CELLS:,} (each is a pane of the transcript); gradrepl replay runs any\n")


@pytest.mark.kernel
def test_sigterm_ends_an_app_busy_with_a_big_script_and_its_kernel(tmp_path: Path) -> None:
    """A script of as many cells as the app resumes keeps its event loop busy for a minute or
    more; SIGTERM still ends the app (exit 143) and its kernel, and the terminal is given back."""
    from gradrepl.cli import MAX_APP_CELLS

    path = tmp_path / "cells.py"
    path.write_bytes(b"# %\x25\nx = 1\n" * MAX_APP_CELLS)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "GRADREPL_JOURNAL_DIR": str(tmp_path / "journal"), "TERM": "xterm-256color"}
    main, child = pty.openpty()
    app = subprocess.Popen([sys.executable, "-m", "gradrepl", str(path)], stdin=child, stdout=child, stderr=child,
                           env=env, cwd=tmp_path, start_new_session=True)
    os.close(child)
    screen = bytearray()
    started = threading.Event()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)
            if b"kernel" in screen:
                started.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert started.wait(60), "the app drew no status line"
        kernels = subprocess.run(["pgrep", "-P", str(app.pid)], capture_output=True, text=True).stdout.split()
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=60) == 128 + signal.SIGTERM
        for pid in kernels:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        os.close(main)
