"""`--sandbox`: the kernel confines itself with Landlock before anything else runs in it (see
launch.py), through py_landlock, a typed binding of the Landlock syscalls.

What it may do, once confined (and every process it starts, and no way back: no_new_privs):
- read and run files anywhere it could before (reading the user's files stays allowed);
- write only under the folders it was given (the script's folder, `--sandbox-writable`), its
  own runtime folder (its sockets, and a private temp folder, removed with it) and /dev/shm,
  plus /dev/null, /dev/zero and /dev/urandom;
- no TCP connect or bind (Landlock ABI 4 and later; its own channels are unix sockets).
Landlock confines the calling thread and what it starts later: it must run while the kernel
process has its one thread, before ipykernel starts its own.
"""

from __future__ import annotations

import json
import os
from typing import Any

NET_ABI = 4  # TCP bind/connect rules
MODES = ("strict", "best-effort")


class SandboxError(Exception):
    """The sandbox could not be set up; str() is one line for the user."""


def parse(text: str) -> dict[str, Any]:
    spec = json.loads(text)
    if spec.get("mode") not in MODES or not isinstance(spec.get("writable"), list):
        raise SandboxError(f"gradrepl: not a sandbox request: {text[:100]!r}")
    return spec


def confine(spec: dict[str, Any], runtime_dir: str) -> list[str]:
    """Confine this process as `spec` says; what best-effort mode could not confine (strict
    mode raises SandboxError instead)."""
    try:
        from py_landlock import AccessFs, Landlock, LandlockError, get_abi_version
    except ImportError:
        raise SandboxError("gradrepl: --sandbox needs py_landlock (pip install py_landlock), not installed") from None
    strict = spec["mode"] == "strict"
    try:
        abi = int(get_abi_version())
    except (LandlockError, OSError) as err:
        if strict:
            raise SandboxError(f"gradrepl: --sandbox needs Landlock, which this Linux does not offer ({err}); "
                               "--sandbox=best-effort runs unconfined, saying so") from None
        return ["everything (this Linux has no Landlock)"]
    missing = [] if abi >= NET_ABI else [f"TCP connect and bind (Landlock ABI {abi}; ABI {NET_ABI} confines them)"]
    if missing and strict:
        raise SandboxError(f"gradrepl: --sandbox cannot confine {missing[0]}; --sandbox=best-effort runs without it")
    write = (AccessFs.READ_FILE | AccessFs.READ_DIR | AccessFs.WRITE_FILE | AccessFs.TRUNCATE | AccessFs.MAKE_REG
             | AccessFs.MAKE_DIR | AccessFs.MAKE_SYM | AccessFs.MAKE_SOCK | AccessFs.MAKE_FIFO | AccessFs.REMOVE_FILE
             | AccessFs.REMOVE_DIR | AccessFs.REFER | AccessFs.EXECUTE)
    device = AccessFs.READ_FILE | AccessFs.WRITE_FILE | AccessFs.TRUNCATE
    rules = Landlock(strict=False)  # features this kernel lacks were named above
    rules.add_path_rule("/", access=AccessFs.READ_FILE | AccessFs.READ_DIR | AccessFs.EXECUTE)
    folders = [folder for folder in [*spec["writable"], runtime_dir, "/dev/shm"] if folder and os.path.isdir(folder)]
    rules.add_path_rule(*folders, access=write)
    rules.add_path_rule(*[f for f in ("/dev/null", "/dev/zero", "/dev/urandom") if os.path.exists(f)], access=device)
    try:
        rules.apply()
    except (LandlockError, OSError) as err:
        if strict:
            raise SandboxError(f"gradrepl: --sandbox could not confine the kernel: {err}") from None
        return [f"everything ({err})"]
    return missing


def refusal_line(error: BaseException, writable: list[str]) -> str | None:
    """The line after a cell's PermissionError or refused connection: the sandbox did it, and how to allow it."""
    if not isinstance(error, PermissionError):
        return None
    where = ", ".join(writable) or "the script's folder"
    target = error.filename
    if target is not None and any(_inside(os.fsdecode(target), folder) for folder in writable):
        return None  # refused by the file's own permissions, not the sandbox
    if target is None:
        return "gradrepl: the sandbox refused this network connection (--sandbox allows no TCP connect or bind)"
    return (f"gradrepl: the sandbox refused access to {os.path.abspath(os.fsdecode(target))}: writes are allowed only under {where} "
            "(run with --sandbox-writable DIR to allow another folder)")


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(folder)]) == os.path.realpath(folder)
    except ValueError:
        return False
