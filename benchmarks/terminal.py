"""A terminal program on a pseudo-terminal of its own, read as text and typed into.

One harness for the bench (first frame, memory) and the tests (an app killed and started
again). What the program draws is decoded and stripped of escape sequences; `wait_for`
says when each marker was first drawn since the launch or the last `type`. Every process
the program starts carries a tag in its environment: `close` ends any still running.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path
from types import TracebackType

from benchmarks.processes import TAG_VAR, kill_leftovers, new_tag

CTRL_Q = b"\x11"
# CSI, OSC, DCS/SOS/PM/APC strings and two-byte sequences.
ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[ -/]*[0-OQ-WYZ\\`-~])")
KEEP = 1 << 20  # characters of drawn text kept for `wait_for`


class TerminalError(Exception):
    """The program did not draw what was waited for; str() is one line."""


class Terminal:
    """`argv` on a `columns` x `lines` pseudo-terminal, in a session of its own."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        label: str,
        size: tuple[int, int] = (120, 40),
    ) -> None:
        columns, lines = size
        self.label = label
        self.tag = new_tag()
        self.problems: list[str] = []  # what went wrong on the way out (see close)
        self.drawn = ""  # text drawn since the launch or the last type(), escapes removed
        self._partial = ""  # an escape sequence cut off at the end of the last read
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._eof = False
        self._closed = False
        child_env = {key: value for key, value in env.items() if key != "TEXTUAL"}  # no devtools
        child_env.update(TERM="xterm-256color", COLUMNS=str(columns), LINES=str(lines), **{TAG_VAR: self.tag})
        master, slave = os.openpty()
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
            self.started = time.perf_counter()
            self.process = subprocess.Popen(
                argv, cwd=cwd, env=child_env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.master = master

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def read(self, timeout: float) -> str:
        """Text drawn within `timeout` s, escape sequences removed; "" at the timeout or at EOF."""
        if self._eof:
            return ""
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0.0))
        if not ready:
            return ""
        try:
            data = os.read(self.master, 1 << 16)
        except OSError:  # EIO: the program has closed the terminal
            data = b""
        if not data:
            self._eof = True
            return ""
        text = self._partial + self._decoder.decode(data)
        self._partial = ""
        cut = text.rfind("\x1b")
        if cut >= 0 and ESCAPE.match(text, cut) is None and len(text) - cut < 4096:
            text, self._partial = text[:cut], text[cut:]
        new = ESCAPE.sub("", text)
        self.drawn = (self.drawn + new)[-KEEP:]
        return new

    def last_text(self) -> str:
        return " ".join(self.drawn[-2000:].split())[-160:] or "nothing"

    def wait_for(self, *markers: str, timeout: float = 60.0) -> dict[str, float]:
        """Seconds from the launch until each marker was drawn (since the last type());
        TerminalError if one is missing after `timeout` s or the program ends first."""
        seen = {marker: time.perf_counter() - self.started for marker in markers if marker in self.drawn}
        missing = [marker for marker in markers if marker not in seen]
        deadline = time.perf_counter() + timeout
        while missing:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                shown = " and ".join(repr(m) for m in missing)
                raise TerminalError(f"{self.label}: {shown} not on screen after {timeout:.0f} s (last text: {self.last_text()!r})")
            new = self.read(remaining)
            if self._eof:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)
                raise TerminalError(
                    f"{self.label} exited (status {self.process.poll()}) before drawing {missing} (last text: {self.last_text()!r})"
                )
            if new:
                now = time.perf_counter() - self.started
                seen.update((marker, now) for marker in missing if marker in self.drawn)
                missing = [marker for marker in missing if marker not in seen]
        return seen

    def type(self, keys: bytes | str) -> None:
        """Send keys; later waits look only at what is drawn from now on."""
        self.drawn = ""
        os.write(self.master, keys.encode() if isinstance(keys, str) else keys)

    def rss_mb(self) -> float:
        """VmRSS of the program's own process (not its children), in MiB."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            raise TerminalError(f"{self.label}: process {self.pid} is gone") from None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise TerminalError(f"{self.label}: no VmRSS in /proc/{self.pid}/status")

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Signal the program itself (not what it started) and wait for it to end."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)
        self._drain_until_exit(None)

    def quit(self, keys: bytes = CTRL_Q, grace: float = 5.0) -> int | None:
        """Type the quit keys and give the program `grace` s to end; its exit status, or
        None if it had to be killed (said in `problems`)."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                os.write(self.master, keys)
        self._drain_until_exit(grace)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait()
            self.problems.append(f"{self.label} did not exit within {grace:g} s of its quit keys; killed it")
            return None
        if self.process.returncode != 0:
            self.problems.append(f"{self.label} exited with status {self.process.returncode} after its quit keys")
        return self.process.returncode

    def _drain_until_exit(self, timeout: float | None) -> None:
        """Keep reading while the program ends: a full terminal buffer would block its writes."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        while self.process.poll() is None:
            remaining = 1.0 if deadline is None else deadline - time.perf_counter()
            if remaining <= 0:
                return
            if self._eof:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(remaining)
            else:
                self.read(remaining)

    def close(self) -> None:
        """Kill the program if it still runs, and anything it started that outlived it."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()
        finally:
            os.close(self.master)
            if (message := kill_leftovers(self.tag, self.label)) is not None:
                self.problems.append(message)
