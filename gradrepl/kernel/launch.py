"""Entry point of the kernel process: an ordinary IPython kernel with the probe installed.

Runs as `python -c <bootstrap> -f CONNECTION_FILE [--preimport MODULE]...`, see process.py.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from pathlib import Path


def _preimport(module: str) -> None:
    try:
        __import__(module)
    except BaseException:  # the user's own import will show the real error
        pass


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
    preimports: list[str] = []
    while "--preimport" in args:
        at = args.index("--preimport")
        preimports.append(args[at + 1])
        del args[at : at + 2]

    # As ipykernel_launcher does: keep the cwd off sys.path while the kernel loads;
    # IPython puts it back for the user.
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]

    for module in preimports:
        threading.Thread(target=_preimport, args=(module,), name=f"preimport-{module}", daemon=True).start()

    from ipykernel.kernelapp import IPKernelApp

    from gradrepl.kernel import probe

    app = IPKernelApp.instance()
    with _debugpy_hidden():
        # gradrepl keeps its own history: cells are not written into the user's IPython database.
        # Completion reads the live namespace; jedi's static analysis of torch takes most of a second.
        app.initialize([*args, "--HistoryManager.hist_file=:memory:", "--IPCompleter.use_jedi=False"])
    probe.install(app.shell, app.kernel)
    app.start()
    _exit_after_atexit()


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
    for module in list(sys.modules.values()):
        try:
            values = list(vars(module).values())
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
            stream.flush()
        except BaseException:
            pass
    os._exit(code)
