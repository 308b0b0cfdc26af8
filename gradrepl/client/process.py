"""Start and stop the kernel process itself, using only the standard library.

The kernel is launched before jupyter_client is even imported, so the kernel's own
start-up (ipykernel, and torch when it is preloaded) overlaps the front end's.
Transport is ZeroMQ over unix sockets inside a private 0700 directory; messages are
HMAC-signed with a fresh key; the connection file is mode 0600 and removed on close.
What the kernel writes to fd 1 and 2 comes to the front end on a pipe (client/kernel_log.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import gradrepl
from gradrepl.client.kernel_errors import KernelError
from gradrepl.client.kernel_log import KernelLog
from gradrepl.client.runtime_dirs import make_runtime_dir, record_owner, remove_stale
from gradrepl.protocol import MEMORY_LIMIT_ENV, PARENT_PID_ENV

CHANNEL_PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}


# `python -c` puts the working directory (the script's folder) first on sys.path: it goes before
# anything is imported, so that no file there (a py_landlock.py, a json.py) is imported in its
# stead before --sandbox confines the kernel. IPython puts it back for the user's cells.
_BOOTSTRAP = (
    "import sys;sys.path[:1]=[] if sys.path[:1]==[''] else sys.path[:1];sys.path.insert(0,{root!r});"
    "from gradrepl.inkernel.launch import main;"
    "sys.path.pop(0);main()"
)


@dataclass
class KernelProcess:
    """One running kernel process and the private directory that holds its sockets."""

    process: subprocess.Popen[bytes]
    runtime_dir: Path
    connection_file: Path
    connection_info: dict[str, object] = field(repr=False)
    log: KernelLog | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def interrupt(self) -> None:
        if self.is_alive():
            os.kill(self.process.pid, signal.SIGINT)

    def kill(self) -> None:
        if self.is_alive():
            self.process.kill()
        self.process.wait()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None if the process is still running after `timeout` seconds."""
        if timeout is not None and self.process.returncode is None:
            # Popen.wait(timeout) polls, sleeping up to 50 ms between looks while another
            # thread is blocked in wait() (the session's death watch always is): block on
            # the process's pidfd instead, so an exit is seen as it happens.
            if not _until_exited(self.process.pid, timeout):
                timeout = 0.0
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, limit: int = 4000) -> str:
        """What the process wrote outside the Jupyter protocol (crash messages land here),
        up to now: the last `limit` bytes."""
        return self.log.tail(limit).decode("utf-8", "replace") if self.log is not None else ""

    def log_size(self) -> int:
        """How many bytes the process has written outside the Jupyter protocol so far."""
        return self.log.size() if self.log is not None else 0

    def cleanup(self) -> None:
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)


def _until_exited(pid: int, timeout: float) -> bool:
    """Block until process `pid` has exited (reaped or not): False if it is still running
    after `timeout` seconds. True at once where that cannot be watched (no pidfd: not Linux,
    or a kernel before 5.3; or the process is gone), leaving the wait to Popen."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return True
    try:
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        return bool(poll.poll(max(timeout, 0.0) * 1000))
    except OSError:
        return True
    finally:
        os.close(fd)


def launch_kernel(
    *,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> KernelProcess:
    """Start an ipykernel with this interpreter; return at once, without waiting for it.
    Call it from a thread that lives as long as the kernel should: on Linux the kernel is
    killed when the thread that started it ends (PR_SET_PDEATHSIG, see inkernel/launch.py).
    RuntimeDirError if its private directory cannot be made."""
    runtime_dir = make_runtime_dir()
    info: dict[str, object] = {
        "transport": "ipc",
        "ip": str(runtime_dir / "k"),
        "key": secrets.token_hex(32),
        "signature_scheme": "hmac-sha256",
        "kernel_name": "gradrepl",
        **CHANNEL_PORTS,
    }
    connection_file = runtime_dir / "kernel.json"
    fd = os.open(connection_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(info, out)

    package_root = str(Path(gradrepl.__file__).resolve().parent.parent)
    argv = [sys.executable, "-c", _BOOTSTRAP.format(root=package_root), "-f", str(connection_file)]
    env = dict(os.environ)
    env.pop("JPY_PARENT_PID", None)
    env.update(extra_env or {})
    env[PARENT_PID_ENV] = str(os.getpid())
    if MEMORY_LIMIT_ENV in env:
        # glibc gives each thread a malloc arena, reserving 64 MB of address space apiece
        # (up to 8 per core): under RLIMIT_AS those reservations, not the memory used, would
        # decide what fits. Two arenas cut a kernel with torch from 1.2 GB to 0.8 GB.
        env.setdefault("MALLOC_ARENA_MAX", "2")
    log_read, log_write = os.pipe()
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_write,
            stderr=log_write,
            start_new_session=True,
        )
    except BaseException as err:
        os.close(log_read)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        if isinstance(err, OSError):  # this Python cannot be run again (its folder unreadable to this user)
            raise KernelError(f"gradrepl: cannot start the kernel: {err.strerror or err}: {argv[0]}") from None
        raise
    finally:
        os.close(log_write)
    kernel = KernelProcess(process, runtime_dir, connection_file, info, KernelLog(log_read, runtime_dir / "kernel.log"))
    with contextlib.suppress(OSError):
        record_owner(runtime_dir, process.pid)
    _remove_stale_once(runtime_dir)
    return kernel


_swept = False


def _remove_stale_once(runtime_dir: Path) -> None:
    """The first kernel a front end starts removes the runtime directories that front ends
    killed outright left behind (a kernel's watcher removes its own; see runtime_dirs.py)."""
    global _swept
    if not _swept:
        _swept = True
        remove_stale(runtime_dir.parent, keep=runtime_dir)
