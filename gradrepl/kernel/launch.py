"""Entry point of the kernel process: an ordinary IPython kernel with the probe installed.

Runs as `python -c <bootstrap> -f CONNECTION_FILE [--preimport MODULE]...`, see process.py.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path


def _preimport(module: str) -> None:
    try:
        __import__(module)
    except BaseException:  # the user's own import will show the real error
        pass


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
    # gradrepl keeps its own history: cells are not written into the user's IPython database.
    app.initialize([*args, "--HistoryManager.hist_file=:memory:"])
    probe.install(app.shell, app.kernel)
    app.start()


if __name__ == "__main__":
    main()
