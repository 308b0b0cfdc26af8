"""Entry point of the kernel process: an ordinary IPython kernel with the probe installed.

Runs as `python -c <bootstrap> -f CONNECTION_FILE`, see gradrepl/client/process.py.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

from gradrepl.inkernel import orphan_watch
from gradrepl.protocol import MEMORY_LIMIT_ENV, PARENT_PID_ENV, RUNTIME_DIR_PREFIX, SANDBOX_PARTLY, SandboxRequest, size_text


@contextlib.contextmanager
def _debugpy_hidden() -> Iterator[None]:
    """Start the kernel without the Jupyter debugger, which gradrepl never asks for.

    ipykernel imports debugpy while it initialises if it can (a fifth of the start-up
    time); a None entry in sys.modules makes that import fail. The entry is removed
    afterwards, so user code can still import debugpy.
    """
    had = "debugpy" in sys.modules
    if not had:
        sys.modules["debugpy"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if not had and sys.modules.get("debugpy", 0) is None:
            del sys.modules["debugpy"]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    memory_limit, runtime_dir = _guard(args)
    sandboxed = _sandboxed(runtime_dir)

    # As ipykernel_launcher does: keep the cwd off sys.path while the kernel loads;
    # IPython puts it back for the user.
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]

    # No cyclic garbage collection while the kernel loads: it would trace every object
    # ipykernel creates, many times over, and none of them is garbage worth finding yet.
    gc.disable()

    from ipykernel.kernelapp import IPKernelApp

    from gradrepl.inkernel import probe

    pipe_in_place = _iopub_pipe_in(runtime_dir) if runtime_dir else None
    app = IPKernelApp.instance()
    with _debugpy_hidden():
        # gradrepl keeps its own history: cells are not written into the user's IPython database.
        # Completion reads the live namespace; jedi's static analysis of torch takes most of a second.
        app.initialize([*args, "--HistoryManager.hist_file=:memory:", "--IPCompleter.use_jedi=False"])
    if pipe_in_place is not None:
        pipe_in_place()
    probe.install(app.shell, app.kernel)
    if memory_limit:
        _note_memory_errors(app.shell, memory_limit)
    if sandboxed is not None:
        _note_sandbox_refusals(app.shell, sandboxed)
    # The kernel's own objects (ipykernel, IPython, the probe: some 40,000) live as long as
    # the process: kept out of later collections, as a plain `python script.py` has no such
    # objects for its collections to trace. Everything the user's cells create is collected
    # as usual; the collector is on again before the first cell.
    gc.freeze()
    gc.enable()
    app.start()
    # ipykernel's own atexit close stops the IOPub thread, then joins the control thread,
    # which can be in the middle of flushing output to that stopped thread: it then waits
    # forever. The process ends next, closing every socket with it, so close is not run.
    atexit.unregister(app.close)
    _exit_after_atexit()


def _guard(args: list[str]) -> tuple[int, str]:
    """First thing in the kernel: its memory limit, and its end with the front end's.

    The limit (RLIMIT_AS, the address space) is set before anything big is loaded. A
    front end that dies without a word (SIGKILL) cannot stop the kernel, which runs in a
    session of its own: on Linux the kernel is SIGKILLed when its parent goes, and a
    watcher removes its private runtime directory (see orphan_watch.py). SIGTERM, from
    anyone else, removes the directory and ends the kernel. Returns the limit (0: none)
    and that directory ("" if there is no connection file).
    """
    import os
    import signal

    limit = os.environ.pop(MEMORY_LIMIT_ENV, "")
    if limit:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY and int(limit) > hard:
            _fail(f"--memory-limit is above this system's hard limit of {hard} bytes (ulimit -Hv)")
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), hard))
    memory_limit = int(limit or 0)

    connection_file = args[args.index("-f") + 1] if "-f" in args[:-1] else ""
    runtime_dir = os.path.dirname(os.path.abspath(connection_file)) if connection_file else ""

    kernel = os.getpid()

    def terminated(signum: int, frame: object) -> None:
        try:  # each step on its own: memory may be short, and the exit must come
            if os.getpid() == kernel:  # not in a forked child (multiprocessing), which inherits this
                try:
                    _remove_runtime_dir(runtime_dir)
                finally:
                    _flush_files()
        finally:
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)  # ends as "killed by SIGTERM", as it was
            finally:
                os._exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, terminated)
    parent = os.environ.pop(PARENT_PID_ENV, "")
    if parent and orphan_watch.die_with_parent():
        if os.getppid() != int(parent):  # the front end went before the request was made
            terminated(signal.SIGTERM, None)
        orphan_watch.start_watcher(int(parent), lambda: _remove_runtime_dir(runtime_dir))
    _default_sigterm_in_forked_children()
    _ipython_dir_in(runtime_dir)
    return memory_limit, runtime_dir


def _ipython_dir_in(runtime_dir: str) -> None:
    """Where HOME has no IPython directory that can be written (a read-only or missing HOME),
    IPython makes a new temporary one each time it looks, and leaves them all behind: give
    it one in the kernel's runtime directory, which goes when the kernel does."""
    import os

    if "IPYTHONDIR" in os.environ or not os.path.basename(runtime_dir).startswith(RUNTIME_DIR_PREFIX):
        return

    def writable(path: str) -> bool:
        return os.path.isdir(path) and os.access(path, os.W_OK)

    # As IPython.paths.get_ipython_dir chooses: ~/.ipython, or a legacy ~/.config/ipython.
    home = os.path.expanduser("~")
    chosen = os.path.join(home, ".ipython")
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    legacy = os.path.join(config, "ipython")
    if sys.platform.startswith("linux") and writable(config) and writable(legacy) and not os.path.exists(chosen):
        chosen = legacy
    if writable(chosen) if os.path.exists(chosen) else writable(os.path.dirname(chosen)):
        return
    os.environ["IPYTHONDIR"] = os.path.join(runtime_dir, "ipython")


def _default_sigterm_in_forked_children() -> None:
    """Forked children (multiprocessing) get the default SIGTERM back: it ends them at once,
    whatever they are doing, as in a kernel without the handler. SIGTERM is blocked across
    the fork, so one sent before the child has switched (Process.terminate() right after
    start()) waits for the default instead of reaching Python, which drops it then."""
    import os
    import signal

    forking = threading.local()

    def before() -> None:
        forking.blocked = signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def after_in_parent() -> None:
        if not getattr(forking, "blocked", True):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    def after_in_child() -> None:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        finally:
            after_in_parent()

    os.register_at_fork(before=before, after_in_parent=after_in_parent, after_in_child=after_in_child)


# ipykernel's private methods that the patch below replaces or relies on, and how many
# parameters each takes, self included (see docs/private-apis.md).
_PIPE_METHODS = {"_setup_pipe_in": 1, "_setup_pipe_out": 1, "_handle_pipe_msg": 2}
_NO_TCP = "refusing to open a TCP port"


def _iopub_pipe_in(runtime_dir: str) -> Callable[[], None] | None:
    """Output of forked children (multiprocessing) reaches the kernel's IOPub thread on a pipe
    that ipykernel opens as a TCP port on 127.0.0.1, where any local user can connect: make
    it a unix socket in the kernel's private directory, like the kernel's own channels.

    Fails closed: when this ipykernel's IOPubThread lacks the methods replaced here (or
    they changed shape), or the socket cannot be bound, the kernel ends with one line
    rather than fall back to the TCP port. Returns the check to run once the kernel has
    initialised: that its IOPub thread did set its pipe up here. A connection file outside
    a directory gradrepl made (a kernel started by hand) keeps ipykernel's own pipe: None.
    """
    import inspect
    import os

    import zmq
    from ipykernel import __version__ as ipykernel_version
    from ipykernel import iostream
    from zmq.eventloop.zmqstream import ZMQStream

    if not os.path.basename(runtime_dir).startswith(RUNTIME_DIR_PREFIX):
        return None
    thread = iostream.IOPubThread
    for name, expected in _PIPE_METHODS.items():
        method = getattr(thread, name, None)
        if not callable(method):
            _fail(f"this ipykernel ({ipykernel_version}) has no unix-socket pipe for forked output "
                  f"(IOPubThread.{name} is missing); {_NO_TCP}")
        try:
            count = len(inspect.signature(method).parameters)
        except (TypeError, ValueError):
            count = -1
        if count != expected:
            _fail(f"this ipykernel ({ipykernel_version}) has no unix-socket pipe for forked output "
                  f"(IOPubThread.{name} takes {count} parameters, not {expected}); {_NO_TCP}")
    path = os.path.join(runtime_dir, "k-pipe")
    address = f"ipc://{path}"
    bound: list[str] = []

    def setup_pipe_in(self: iostream.IOPubThread) -> None:
        self._pipe_uuid = os.urandom(16)
        pipe_in = self.socket.context.socket(zmq.PULL)
        pipe_in.linger = 0
        try:
            pipe_in.bind(address)
        except zmq.ZMQError as error:
            pipe_in.close()
            _fail(f"cannot listen for forked output on {path} ({error}); {_NO_TCP}")
        self._pipe_in = ZMQStream(pipe_in, self.io_loop)
        self._pipe_in.on_recv(self._handle_pipe_msg)
        bound.append(address)

    def setup_pipe_out(self: iostream.IOPubThread) -> tuple[zmq.Context, zmq.Socket]:
        context = zmq.Context()  # a new one after the fork
        pipe_out = context.socket(zmq.PUSH)
        pipe_out.linger = 3000
        pipe_out.connect(address)
        return context, pipe_out

    # Once the kernel has initialised, its sys.stderr (and fd 2) go through IOPub: the line
    # saying why it ends is written to the log on a copy of fd 2 taken now.
    log = os.dup(2)

    def in_place() -> None:
        try:
            if not bound:
                _fail(f"this ipykernel ({ipykernel_version}) did not set up its pipe for forked output "
                      "through IOPubThread._setup_pipe_in (it may be a TCP port); refusing to start", log)
        finally:
            os.close(log)

    thread._setup_pipe_in = setup_pipe_in  # type: ignore[method-assign]
    thread._setup_pipe_out = setup_pipe_out  # type: ignore[method-assign]
    return in_place


def _sandboxed(runtime_dir: str) -> SandboxRequest | None:
    """--sandbox: the kernel sets its limits and confines itself now, while it has one thread
    (sandbox.py), with a private temp folder and IPython folder in its runtime folder; the
    request, or None without --sandbox. Said on stderr, the kernel ends when it cannot (strict),
    or says what it could not confine (best-effort)."""
    import os

    from gradrepl.inkernel import sandbox
    from gradrepl.protocol import SANDBOX_ENV

    text = os.environ.pop(SANDBOX_ENV, "")
    if not text:
        return None
    try:
        request = sandbox.parse(text)
        if not runtime_dir:
            raise sandbox.SandboxError("gradrepl: --sandbox needs the kernel's runtime folder")
        private = os.path.join(runtime_dir, "tmp")
        os.makedirs(private, mode=0o700, exist_ok=True)
        for name in ("TMPDIR", "TEMP", "TMP"):
            os.environ[name] = private
        os.environ["IPYTHONDIR"] = os.path.join(runtime_dir, "ipython")
        os.makedirs(os.environ["IPYTHONDIR"], mode=0o700, exist_ok=True)  # the kernel may make no folder there once confined
        missing = sandbox.limit(request)
        missing += sandbox.confine(request, runtime_dir)
    except sandbox.SandboxError as err:
        _fail(str(err))
    if missing:
        print(f"{SANDBOX_PARTLY}{'; '.join(missing)}", file=sys.stderr, flush=True)
    return request


def _note_sandbox_refusals(shell: object, request: SandboxRequest) -> None:
    """After a cell the sandbox refused something, one line saying so and how to allow it."""
    from gradrepl.inkernel.sandbox import refusal_line

    _note_after_errors(shell, lambda error: refusal_line(error, request))


_OUT_OF_MEMORY = ("failed to map segment", "cannot allocate memory", "can't allocate memory", "can't start new thread")


def _note_memory_errors(shell: object, limit: int) -> None:
    """After a cell that ran out of memory, one line on its stderr that says the limit did it:
    an import that fails for want of address space says only "failed to map segment"."""
    def line_for(error: BaseException) -> str | None:
        if isinstance(error, MemoryError) or any(text in str(error).lower() for text in _OUT_OF_MEMORY):
            return (f"gradrepl: out of memory under --memory-limit {size_text(limit)} "
                    "(the kernel's address space): a larger limit may be needed")
        return None

    _note_after_errors(shell, line_for)


def _note_after_errors(shell: object, line_for: Callable[[BaseException], str | None]) -> None:
    """After a cell that failed, the line `line_for` has for its error (if any), on its stderr."""
    def post_run_cell(result: object) -> None:
        try:
            error = getattr(result, "error_in_exec", None)
            line = line_for(error) if error is not None else None
            if line is not None:
                print(line, file=sys.stderr)
        except BaseException:
            pass

    shell.events.register("post_run_cell", post_run_cell)  # type: ignore[attr-defined]


def _remove_runtime_dir(path: str) -> None:
    """Remove the kernel's runtime directory, if it is one gradrepl made for it (see process.py)."""
    import os
    import shutil

    try:
        if os.path.basename(path).startswith(RUNTIME_DIR_PREFIX) and os.lstat(path).st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)
    except OSError:
        pass


def _fail(message: str, log: int | None = None) -> NoReturn:
    """End a kernel that cannot start, with one line for the front end to show (the last in its
    log): on stderr, or on `log`, a file descriptor of the log, once stderr goes through IOPub."""
    import os

    if log is None:
        print(message, file=sys.stderr, flush=True)
    else:
        os.write(log, f"{message}\n".encode())
    os._exit(1)


_FILE_TYPES = (io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom, io.FileIO)


def _exit_after_atexit() -> None:
    """End the kernel process once its loop has stopped, skipping interpreter teardown.

    The user's atexit callbacks (and IPython's, which clears the namespace, so files
    left open there are closed) run as at a normal exit. Files still open in modules'
    globals are flushed, as the teardown that is skipped would have done by closing them.
    That teardown, module by module, takes most of a second with torch loaded.
    """
    import atexit
    import os

    code = 0
    try:
        atexit._run_exitfuncs()
    except BaseException:
        code = 1
    _flush_files()
    os._exit(code)


def _flush_files() -> None:
    """Flush real files still open in modules' globals, and the standard streams."""
    file_types = frozenset(_FILE_TYPES)
    for module in list(sys.modules.values()):
        try:
            found = vars(module).values()
            if file_types.isdisjoint(map(type, found)):  # most modules: one pass in C
                continue
            values = list(found)
        except BaseException:
            continue
        for value in values:
            # Real files only: ipykernel's streams wait on its I/O thread, gone by now.
            if type(value) in _FILE_TYPES:
                try:
                    if not value.closed:
                        value.flush()
                except BaseException:
                    pass
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            pass
