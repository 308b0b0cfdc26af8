"""The kernel's private runtime directory: making it, saying whose it is, and removing the
ones left behind by front ends that were killed.

A runtime directory is `$TMPDIR/gradrepl-XXXXXXXX`, mode 0700. Its `owner.json` names the
front end and the kernel (pid, and start time so a reused pid is not taken for them) and
the pid namespace both run in. Normally the directory is removed when its kernel ends; one
whose front end was killed outright is removed by the kernel's watcher
(gradrepl/inkernel/orphan_watch.py), and failing that by the next front end that starts.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from gradrepl.protocol import RUNTIME_DIR_PREFIX

OWNER_FILE = "owner.json"


class RuntimeDirError(OSError):
    """The kernel's private directory cannot be made; str() is one line for the user."""


def make_runtime_dir() -> Path:
    """A new private directory for a kernel, in the temporary directory."""
    try:
        base = tempfile.gettempdir()
    except OSError as err:  # TMPDIR, /tmp, /var/tmp, /usr/tmp and the cwd all unusable
        raise RuntimeDirError(_no_temporary_directory(err)) from None
    try:
        path = Path(tempfile.mkdtemp(prefix=RUNTIME_DIR_PREFIX, dir=base))
    except OSError as err:
        raise RuntimeDirError(f"gradrepl: cannot make the kernel's private directory in {base}: "
                              f"{err.strerror or err}; set TMPDIR to a writable directory") from None
    try:
        os.chmod(path, 0o700)
        record_owner(path)
    except OSError as err:
        shutil.rmtree(path, ignore_errors=True)
        raise RuntimeDirError(f"gradrepl: cannot write in the kernel's private directory {path}: "
                              f"{err.strerror or err}; set TMPDIR to a writable directory") from None
    return path


def _no_temporary_directory(err: OSError) -> str:
    tried = err.strerror or str(err)
    _, found, listed = tried.partition(" found in ")
    if found:
        import ast

        try:
            tried = ", ".join(map(str, ast.literal_eval(listed)))
        except (ValueError, SyntaxError, TypeError):
            tried = listed
    return f"gradrepl: no usable temporary directory for the kernel's files (tried {tried}); set TMPDIR to a writable directory"


def owner_record(frontend: int, kernel: int | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"frontend": [frontend, _start_time(frontend)], "pidns": _pid_namespace()}
    if kernel is not None:
        record["kernel"] = [kernel, _start_time(kernel)]
    return record


def record_owner(path: Path, kernel: int | None = None) -> None:
    """Write (or rewrite, once the kernel is running) whose directory `path` is."""
    temporary = path / f".{OWNER_FILE}"
    with open(temporary, "w", encoding="utf-8") as out:
        json.dump(owner_record(os.getpid(), kernel), out)
    os.replace(temporary, path / OWNER_FILE)


def remove_stale(parent: Path, keep: Path | None = None) -> list[Path]:
    """Remove the runtime directories in `parent` whose front end and kernel are both gone;
    the ones removed. Only gradrepl's own are looked at: named so, a real directory of this
    user with mode 0700, holding an owner record written in this pid namespace."""
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(RUNTIME_DIR_PREFIX) or (keep is not None and entry.path == str(keep)):
            continue
        path = Path(entry.path)
        if _is_stale(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _is_stale(path: Path) -> bool:
    try:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) != 0o700:
            return False
        with open(path / OWNER_FILE, encoding="utf-8") as source:
            owner = json.load(source)
        if owner.get("pidns") != _pid_namespace():
            return False
        processes = [owner["frontend"], *([owner["kernel"]] if "kernel" in owner else [])]
        return not any(_is_running(int(pid), start) for pid, start in processes)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return False


def _is_running(pid: int, start: int | None) -> bool:
    if pid <= 0:
        return False
    now = _start_time(pid)
    if now is not None:
        return start is None or now == start
    if os.path.isdir("/proc/self"):  # /proc is there and has no such process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (None without /proc or such a process)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as source:
            fields = source.read().rpartition(b")")[2].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
