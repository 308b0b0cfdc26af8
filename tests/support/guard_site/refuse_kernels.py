"""Refuses to be a kernel: loaded through sitecustomize in every Python process a test not
marked `kernel` starts (tests/support/kernel_guard.py puts this folder on PYTHONPATH).

A refused kernel leaves a note in $GRADREPL_TEST_KERNEL_GUARD, which fails the test at its
end, and exits at once, so whatever started it (a `python -m gradrepl` child, say) sees a
kernel that died while starting. Standard library only, and little of it: the import
hygiene tests look at what a fresh interpreter has loaded."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from itertools import pairwise

GUARD_DIR_ENV = "GRADREPL_TEST_KERNEL_GUARD"
REFUSED_EXIT = 70
GRADREPL_BOOTSTRAP = "from gradrepl.inkernel.launch import main"  # in gradrepl.client.process's `-c` code
IPYKERNEL_MODULES = ("ipykernel", "ipykernel_launcher")


def is_kernel_argv(argv: Sequence[object]) -> bool:
    """Whether a command line starts a kernel: gradrepl's bootstrap, or an ipykernel."""
    args = [os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in argv]
    if any(GRADREPL_BOOTSTRAP in arg for arg in args):
        return True
    return any(a == "-m" and b.split(".")[0] in IPYKERNEL_MODULES for a, b in pairwise(args))


def note(directory: str, argv: Sequence[object], where: str) -> None:
    """Leave a note of a refused kernel start for the test's teardown."""
    import json

    path = os.path.join(directory, f"kernel-{os.getpid()}-{len(os.listdir(directory))}.json")
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"pid": os.getpid(), "parent": os.getppid(), "where": where, "argv": [str(a) for a in argv]}, out)


def refuse_if_kernel() -> None:
    directory = os.environ.get(GUARD_DIR_ENV)
    argv = getattr(sys, "orig_argv", sys.argv)
    if not directory or not is_kernel_argv(argv):
        return
    try:
        note(directory, argv, "a child process")
    finally:
        sys.stderr.write("gradrepl test guard: a kernel started in a test not marked `kernel`\n")
        sys.stderr.flush()
        os._exit(REFUSED_EXIT)
