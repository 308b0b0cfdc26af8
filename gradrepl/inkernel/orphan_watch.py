"""The kernel ends with its front end whatever the user's code does with signals (Linux).

Two parts, set up first thing in the kernel (see launch.py `_guard`):

- PR_SET_PDEATHSIG with SIGKILL: when the front end dies, the kernel is killed at once,
  by the operating system; no handler, no busy native call, no held GIL can delay it.
- A watcher, so that the kernel's private directory goes too, and its forked children
  (multiprocessing) with it: a small process forked from the kernel before anything is
  loaded (and forked twice, so it is not the kernel's child: a cell's `os.wait()` never
  meets it). It waits on pidfds of the front end and of the kernel. If the kernel ends
  first, the front end cleans up and the watcher just exits. If the front end ends first,
  the watcher makes sure the kernel is dead, removes the directory, and kills the
  kernel's process group, which holds the children that did not leave it, and itself.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_KERNEL_DEATH_WAIT = 10.0  # seconds the watcher waits for a SIGKILLed kernel to be gone
# A front end's death kills the kernel (PR_SET_PDEATHSIG) before its own pidfd says it has
# ended: a kernel that ends is followed, for this long, by a look at whether its front end does.
_FRONT_END_GRACE = 2.0


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when the thread that started it ends; False where
    that cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def start_watcher(front_end: int, remove_runtime_dir: Callable[[], None]) -> bool:
    """Start the watcher of this kernel and its parent `front_end`; False where it cannot run
    (no pidfds: not Linux, or a Linux before 5.3), or the front end is gone already. Call it
    while the process has one thread: the watcher is forked."""
    kernel = os.getpid()
    try:
        front_fd = os.pidfd_open(front_end)
    except (AttributeError, OSError):
        return False
    try:
        kernel_fd = os.pidfd_open(kernel)
    except OSError:
        os.close(front_fd)
        return False
    if os.getppid() != front_end:  # gone before the pidfd was opened: it may name another process
        os.close(front_fd)
        os.close(kernel_fd)
        return False
    try:
        middle = os.fork()
    except OSError:
        middle = -1
    if middle == 0:
        try:
            if os.fork() == 0:
                _watch(front_fd, kernel_fd, kernel, remove_runtime_dir)
        finally:
            os._exit(0)
    os.close(front_fd)
    os.close(kernel_fd)
    if middle > 0:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(middle, 0)
    return middle > 0


def _watch(front_fd: int, kernel_fd: int, kernel: int, remove_runtime_dir: Callable[[], None]) -> None:
    """The watcher's whole life (it never returns into the kernel's code)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)  # a cell signalling its process group is not meant for it
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)  # the kernel's log pipe: its reader sees the end when the kernel ends
    keep = sorted({front_fd, kernel_fd})
    os.closerange(3, keep[0])
    os.closerange(keep[0] + 1, keep[1])
    os.closerange(keep[1] + 1, 1 << 16)
    with contextlib.suppress(OSError):
        os.chdir("/")
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_NAME, b"gradrepl-watch", 0, 0, 0)  # its name in ps -o comm, top
    poll = select.poll()
    poll.register(front_fd, select.POLLIN)
    poll.register(kernel_fd, select.POLLIN)
    ready = {fd for fd, _ in poll.poll()}
    if front_fd not in ready and not _ends_within(front_fd, _FRONT_END_GRACE):
        return  # the kernel ended while its front end runs: the front end cleans up
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(kernel_fd, signal.SIGKILL)
    _ends_within(kernel_fd, _KERNEL_DEATH_WAIT)
    remove_runtime_dir()
    if os.getpgrp() == kernel:  # the kernel's own group (it leads a session of its own), never another
        os.killpg(kernel, signal.SIGKILL)


def _ends_within(pidfd: int, seconds: float) -> bool:
    poll = select.poll()
    poll.register(pidfd, select.POLLIN)
    return bool(poll.poll(seconds * 1000))
