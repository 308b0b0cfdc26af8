from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
EXAMPLES = ROOT / "examples"


@pytest.fixture
def examples_copy(tmp_path: Path) -> Path:
    """The examples folder copied, so tests may write beside the scripts."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture(autouse=True)
def private_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """History and journals of the app under test go to a folder of the test's own."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("GRADREPL_HISTORY", raising=False)
    monkeypatch.delenv("GRADREPL_JOURNAL_DIR", raising=False)
    return state


class Terminal:
    """A gradrepl process on a pseudo-terminal of its own (120x40), read and typed into."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd
        self.seen = b""

    def read(self, timeout: float) -> None:
        import select

        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                self.seen += os.read(self.fd, 1 << 16)
            except OSError:
                pass

    def wait_for(self, text: bytes, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen and time.monotonic() < deadline:
            self.read(0.5)
        assert text in self.seen, f"{text!r} never appeared on the terminal"

    def type(self, keys: bytes) -> None:
        self.seen = b""
        os.write(self.fd, keys)

    def kernels(self) -> list[int]:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return [int(c) for c in children if b"gradrepl.inkernel.launch" in Path(f"/proc/{c}/cmdline").read_bytes()]

    def kill(self, signum: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signum)
            os.waitpid(self.pid, 0)


@contextlib.contextmanager
def run_on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Terminal]:
    import fcntl
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, *args], env)
    terminal = Terminal(pid, fd)
    kernels: list[int] = []
    try:
        terminal.wait_for(b"kernel", timeout=60)
        with contextlib.suppress(OSError):
            kernels = terminal.kernels()
        yield terminal
    finally:
        with contextlib.suppress(OSError):
            kernels += terminal.kernels()
        terminal.kill()
        for kernel in kernels:  # what the app would have stopped, had it not been killed
            with contextlib.suppress(ProcessLookupError):
                os.kill(kernel, signal.SIGKILL)
        os.close(fd)
