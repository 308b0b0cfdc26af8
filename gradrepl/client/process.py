"""Start and stop the kernel process itself, using only the standard library.

The kernel is launched before jupyter_client is even imported, so the kernel's own
start-up (ipykernel, and torch when it is preloaded) overlaps the front end's.
Transport is ZeroMQ over unix sockets inside a private 0700 directory; messages are
HMAC-signed with a fresh key; the connection file is mode 0600 and removed on close.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import gradrepl
from gradrepl.protocol import MEMORY_LIMIT_ENV, PARENT_PID_ENV, RUNTIME_DIR_PREFIX

CHANNEL_PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}


_BOOTSTRAP = (
    "import sys;sys.path.insert(0,{root!r});"
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
        """What the process wrote outside the Jupyter protocol (crash messages land here)."""
        try:
            data = (self.runtime_dir / "kernel.log").read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def cleanup(self) -> None:
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
    """Start an ipykernel with this interpreter; return at once, without waiting for it."""
    runtime_dir = Path(tempfile.mkdtemp(prefix=RUNTIME_DIR_PREFIX))
    os.chmod(runtime_dir, 0o700)
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
    with open(runtime_dir / "kernel.log", "wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return KernelProcess(process, runtime_dir, connection_file, info)
