"""Private state and config directories, so the bench never touches the user's own.

gradrepl keeps its history and journals under $XDG_STATE_HOME (or GRADREPL_HISTORY and
GRADREPL_JOURNAL_DIR); IPython and Jupyter read config and write runtime files under
IPYTHONDIR, JUPYTER_* and the XDG folders. A bench row points all of them into a
temporary folder of its own, for the app it runs and every kernel started meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Each variable and the folder (under the private root) it is pointed at.
PRIVATE_DIRS: dict[str, str] = {
    "XDG_STATE_HOME": "state",
    "XDG_CONFIG_HOME": "config",
    "XDG_DATA_HOME": "data",
    "GRADREPL_JOURNAL_DIR": "state/gradrepl/journal",
    "IPYTHONDIR": "config/ipython",
    "JUPYTER_CONFIG_DIR": "config/jupyter",
    "JUPYTER_DATA_DIR": "data/jupyter",
    "JUPYTER_RUNTIME_DIR": "data/jupyter/runtime",
}
PRIVATE_FILES: dict[str, str] = {"GRADREPL_HISTORY": "state/gradrepl/history.jsonl"}


def private_environ(root: Path) -> dict[str, str]:
    """The variables that send state and config into `root`; the folders are made."""
    env: dict[str, str] = {}
    for name, relative in PRIVATE_DIRS.items():
        path = root / relative
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(path)
    for name, relative in PRIVATE_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(path)
    return env


def private_env(root: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """A whole environment (this process's, or `base`) with state and config in `root`."""
    return {**(os.environ if base is None else base), **private_environ(root)}


@contextlib.contextmanager
def isolated(label: str) -> Iterator[Path]:
    """For the block: a temporary root, and this process's environment pointed into it (so
    apps run in process, and kernels launched from here, inherit it); all undone after."""
    with tempfile.TemporaryDirectory(prefix=f"gradrepl-bench-{label}-") as name:
        root = Path(name)
        saved = {key: os.environ.get(key) for key in [*PRIVATE_DIRS, *PRIVATE_FILES]}
        os.environ.update(private_environ(root))
        try:
            yield root
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
