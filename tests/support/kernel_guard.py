"""The guard that keeps kernels out of tests not marked `kernel` (tests/conftest.py turns
it on for each of them).

Two layers, because a kernel can start in this process or in any process it starts:

- here: `subprocess.Popen` (which jupyter_client, asyncio and gradrepl's own launch_kernel
  all go through) refuses a kernel's command line with KernelStartForbidden;
- in children: guard_site/ goes first on PYTHONPATH, so every Python child (a
  `python -m gradrepl ...`, and the kernel it would start) runs its sitecustomize, which
  refuses to become a kernel and leaves a note in the guard's folder.

Either way the test fails at its end, even if the code under test caught the error.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.guard_site.refuse_kernels import GRADREPL_BOOTSTRAP, GUARD_DIR_ENV, is_kernel_argv

SITE_DIR = Path(__file__).resolve().parent / "guard_site"


class KernelStartForbidden(RuntimeError):
    pass


class KernelGuard:
    def __init__(self, notes: Path) -> None:
        self.notes = notes
        self.refused: list[str] = []  # command lines refused in this process

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(GUARD_DIR_ENV, str(self.notes))
        path = os.environ.get("PYTHONPATH")
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SITE_DIR), *([path] if path else [])]))
        monkeypatch.setattr(subprocess, "Popen", self._guarded_popen())

    def _guarded_popen(self) -> type[subprocess.Popen[Any]]:
        guard = self

        class GuardedPopen(subprocess.Popen):
            def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
                argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
                if is_kernel_argv(argv):
                    guard.refused.append(shown(argv))
                    raise KernelStartForbidden(
                        "a test not marked `kernel` started a kernel; mark it @pytest.mark.kernel, "
                        "or give the app a recorded session (tests/support/recorded_session.py)"
                    )
                super().__init__(args, *rest, **kwargs)

        return GuardedPopen

    def violations(self) -> list[str]:
        """Every kernel start refused, here or in a child, as one line each."""
        found = [f"in the test process: {argv}" for argv in self.refused]
        for note in sorted(self.notes.glob("kernel-*.json")):
            data = json.loads(note.read_text(encoding="utf-8"))
            found.append(f"in process {data['pid']} (child of {data['parent']}): {shown(data['argv'])}")
        return found


def shown(argv: list[Any]) -> str:
    """A command line as one short line, whatever the length of the paths in it: gradrepl's
    bootstrap program stands for itself by the import that makes it a kernel."""
    return " ".join(f"'...{GRADREPL_BOOTSTRAP}...'" if GRADREPL_BOOTSTRAP in str(a) else str(a)[:80] for a in argv)
