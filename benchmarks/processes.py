"""Processes told apart by a tag in their environment, so what a launch left running
(a kernel whose app was killed, say) can be found and ended, and nothing else."""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import signal
import time
from collections.abc import Iterator
from pathlib import Path

# Every kernel a launch starts inherits this variable (with a value per launch), so its
# leftovers can be told from kernels that other gradrepl sessions on the machine run.
TAG_VAR = "GRADREPL_BENCH_RUN"
_tags = itertools.count(1)

Proc = tuple[int, int]  # pid and start time (clock ticks after boot): one process, even if the pid is reused


def new_tag() -> str:
    return f"{os.getpid()}-{next(_tags)}"


def proc_start(pid: int) -> int | None:
    """Start time of a running process; None once it has ended (zombies included)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def tagged(tag: str) -> list[Proc]:
    """Running processes whose environment holds TAG_VAR=tag."""
    needle = f"{TAG_VAR}={tag}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ and (start := proc_start(int(entry.name))) is not None:
            found.append((int(entry.name), start))
    return found


def wait_gone(procs: list[Proc], timeout: float) -> list[Proc]:
    """Wait (on pidfds) up to `timeout` s for the processes to end; those still running."""
    deadline = time.monotonic() + timeout
    left = []
    for pid, start in procs:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if proc_start(pid) != start:
                continue
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0.0))
            if not ready:
                left.append((pid, start))
        finally:
            os.close(fd)
    return left


def kill_leftovers(tag: str, label: str, grace: float = 3.0) -> str | None:
    """SIGKILL what a launch tagged `tag` left running after `grace` s; what happened, or None."""
    left = wait_gone(tagged(tag), grace)
    if not left:
        return None
    for pid, start in left:
        if proc_start(pid) == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    wait_gone(left, 5.0)
    pids = ", ".join(str(pid) for pid, _ in left)
    message = f"{label} left {len(left)} process(es) running {grace:g} s after it ended (pid {pids}); killed them"
    return message


@contextlib.contextmanager
def tagged_environ(tag: str) -> Iterator[None]:
    """TAG_VAR=tag in this process's environment, for kernels launched from here meanwhile."""
    saved = os.environ.get(TAG_VAR)
    os.environ[TAG_VAR] = tag
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(TAG_VAR, None)
        else:
            os.environ[TAG_VAR] = saved
