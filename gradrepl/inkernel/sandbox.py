"""`--sandbox`: the kernel confines itself with Landlock before anything else runs in it (see
launch.py), through py_landlock, a typed binding of the Landlock syscalls.

What it may do, once confined (and every process it starts, and no way back: no_new_privs):
- read and run files anywhere it could before (reading the user's files stays allowed);
- write only under the folders it was given (the script's folder, `--sandbox-writable`), its
  own runtime folder (its sockets, and a private temp folder, removed with it) and /dev/shm,
  plus /dev/null, /dev/zero and /dev/urandom;
- no TCP connect or bind (Landlock ABI 4 and later; its own channels are unix sockets);
- no signals to processes outside it, no abstract unix sockets outside it (ABI 6);
- processes, open files and file size as rlimits set hard (see `limit`), and no capabilities
  (as root, see capabilities.py), so that none of them can be raised again.
Landlock confines the calling thread and what it starts later: it must run while the kernel
process has its one thread, before ipykernel starts its own.
"""

from __future__ import annotations

import errno
import os
import traceback

from gradrepl.protocol import SandboxRequest, size_text

NET_ABI = 4  # TCP bind/connect rules
SCOPE_ABI = 6  # signals and abstract unix sockets scoped to the sandbox


class SandboxError(Exception):
    """The sandbox could not be set up; str() is one line for the user."""


def parse(text: str) -> SandboxRequest:
    try:
        return SandboxRequest.from_json(text)
    except ValueError as err:
        raise SandboxError(f"gradrepl: {err}") from None


def limit(request: SandboxRequest) -> list[str]:
    """Set the request's limits, soft and hard (the kernel cannot raise them again), and give up
    every capability (as root); what best-effort mode could not do (strict raises SandboxError).
    A write past the file size limit fails with EFBIG instead of killing the kernel (SIGXFSZ)."""
    import resource
    import signal

    from gradrepl.inkernel import capabilities

    missing = []
    if os.getuid() == 0:
        if request.mode == "strict":
            raise SandboxError("gradrepl: --sandbox cannot limit processes for root (Linux does not apply RLIMIT_NPROC "
                               "to uid 0): run gradrepl as another user, or --sandbox=best-effort to run without that limit")
        missing.append("the process limit (Linux does not apply it to root)")
    _lower(resource.RLIMIT_NPROC, _tasks_of_user() + request.processes)  # counts threads, of all the user's processes
    _lower(resource.RLIMIT_NOFILE, request.open_files)
    _lower(resource.RLIMIT_FSIZE, request.file_size)
    _lower(resource.RLIMIT_CORE, 0)
    soft_as, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft_as != resource.RLIM_INFINITY:  # --memory-limit, set as the kernel started: now hard too
        _lower(resource.RLIMIT_AS, soft_as)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        capabilities.no_new_privs()
        capabilities.drop_all()
    except OSError as err:
        if request.mode == "strict":
            raise SandboxError(f"gradrepl: --sandbox could not give up the kernel's capabilities ({err})") from None
        missing.append(f"capabilities ({err})")
    return missing


def _lower(which: int, value: int) -> None:
    import resource

    _, hard = resource.getrlimit(which)
    value = min(value, (1 << 62) if hard == resource.RLIM_INFINITY else hard)
    resource.setrlimit(which, (value, value))


def _tasks_of_user() -> int:
    """Processes and threads whose real user is this process's (RLIMIT_NPROC counts them all)."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if line.startswith(("Uid:", "Threads:")))
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return count


def confine(spec: SandboxRequest, runtime_dir: str) -> list[str]:
    """Confine this process as `spec` says; what best-effort mode could not confine (strict
    mode raises SandboxError instead)."""
    try:
        from py_landlock import AccessFs, Landlock, LandlockError, get_abi_version
    except ImportError:
        raise SandboxError("gradrepl: --sandbox needs py_landlock (pip install py_landlock), not installed") from None
    strict = spec.mode == "strict"
    try:
        abi = int(get_abi_version())
    except (LandlockError, OSError) as err:
        if strict:
            raise SandboxError(f"gradrepl: --sandbox needs Landlock, which this Linux does not offer ({err}); "
                               "--sandbox=best-effort runs unconfined, saying so") from None
        return ["everything (this Linux has no Landlock)"]
    missing = [] if abi >= NET_ABI else [f"TCP connect and bind (Landlock ABI {abi}; ABI {NET_ABI} confines them)"]
    if abi < SCOPE_ABI:
        missing.append(f"signals and abstract unix sockets to processes outside it (Landlock ABI {abi}; ABI {SCOPE_ABI} confines them)")
    if missing and strict:
        raise SandboxError(f"gradrepl: --sandbox cannot confine {missing[0]}; --sandbox=best-effort runs without it")
    write = (AccessFs.READ_FILE | AccessFs.READ_DIR | AccessFs.WRITE_FILE | AccessFs.TRUNCATE | AccessFs.MAKE_REG
             | AccessFs.MAKE_DIR | AccessFs.MAKE_SYM | AccessFs.MAKE_SOCK | AccessFs.MAKE_FIFO | AccessFs.REMOVE_FILE
             | AccessFs.REMOVE_DIR | AccessFs.REFER | AccessFs.EXECUTE)
    device = AccessFs.READ_FILE | AccessFs.WRITE_FILE | AccessFs.TRUNCATE
    rules = Landlock(strict=False)  # features this kernel lacks were named above
    rules.add_path_rule("/", access=AccessFs.READ_FILE | AccessFs.READ_DIR | AccessFs.EXECUTE)
    own = [os.path.join(runtime_dir, "tmp"), os.path.join(runtime_dir, "ipython")]
    folders = [folder for folder in [*spec.writable, *own, "/dev/shm"] if folder and os.path.isdir(folder)]
    rules.add_path_rule(*folders, access=write)
    # Its runtime folder itself: its sockets only. The front end writes its log there, unconfined:
    # no link, folder or file the kernel made may stand where the front end will write.
    sockets = AccessFs.READ_FILE | AccessFs.READ_DIR | AccessFs.EXECUTE | AccessFs.MAKE_SOCK | AccessFs.REMOVE_FILE
    rules.add_path_rule(runtime_dir, access=sockets)
    rules.add_path_rule(*[f for f in ("/dev/null", "/dev/zero", "/dev/urandom") if os.path.exists(f)], access=device)
    try:
        rules.apply()
    except (LandlockError, OSError) as err:
        if strict:
            raise SandboxError(f"gradrepl: --sandbox could not confine the kernel: {err}") from None
        return [f"everything ({err})"]
    return missing


def refusal_line(error: BaseException, request: SandboxRequest) -> str | None:
    """The line after a cell the sandbox refused something: that it did, and how to allow it."""
    if isinstance(error, ValueError) and "raise maximum limit" in str(error):
        return ("gradrepl: the sandbox's limits cannot be raised from inside the kernel "
                "(--sandbox-limit NAME=VALUE sets them: cpu, processes, open-files, file-size)")
    if os.getuid() != 0 and ((isinstance(error, RuntimeError) and "can't start new thread" in str(error)) or _fork_refused(error)):
        return f"gradrepl: the sandbox lets the kernel start {request.processes} processes and threads ({request.limit_option('processes')})"
    if not isinstance(error, OSError):
        return None
    if error.errno == errno.EFBIG:
        return f"gradrepl: the sandbox limits a file to {size_text(request.file_size)} (--sandbox-limit file-size=SIZE)"
    if error.errno == errno.EMFILE:
        return f"gradrepl: the sandbox lets the kernel open {request.open_files} files at once ({request.limit_option('open_files')})"
    if not isinstance(error, PermissionError):
        return None
    target = error.filename
    if target is None:
        if error.errno == errno.EPERM:
            return "gradrepl: the sandbox refused this: no signals to processes outside the kernel, no privileged calls"
        return "gradrepl: the sandbox refused this network connection (--sandbox allows no TCP connect or bind)"
    path = os.fsdecode(target)
    own = [os.environ.get("TMPDIR", ""), os.environ.get("IPYTHONDIR", ""), "/dev/shm"]
    if any(_inside(path, folder) for folder in [*request.writable, *own] if folder) or not _permitted(path):
        return None  # refused by the file's own permissions (access(2) is not Landlock's), not the sandbox
    where = ", ".join(request.writable) or "the script's folder"
    return (f"gradrepl: the sandbox refused access to {os.path.abspath(path)}: writes are allowed only under {where} "
            "(run with --sandbox-writable DIR to allow another folder)")


def _permitted(path: str) -> bool:
    """Whether the file's own permissions let this process read and write it (or create it)."""
    if os.path.lexists(path):
        return os.access(path, os.R_OK | os.W_OK)
    return os.access(os.path.dirname(os.path.abspath(path)) or ".", os.W_OK | os.X_OK)


def _fork_refused(error: BaseException) -> bool:
    """A fork (os.fork, subprocess) the process limit refused: EAGAIN at a line that forks."""
    if not isinstance(error, BlockingIOError) or error.errno != errno.EAGAIN:
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and (frames[-1].name in ("_execute_child", "_launch") or "fork" in (frames[-1].line or ""))


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(folder)]) == os.path.realpath(folder)
    except ValueError:
        return False
