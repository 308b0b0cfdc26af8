"""The probe put into a kernel gradrepl did not start (`--existing`, `--server`): run by a
silent execute request, so nothing lands in the kernel's history, `Out` or namespace.

A kernel keeps one probe however many front ends attach: a second attach reuses it, with
the settings it brings, and has the next report carry the whole tensor table (the front end
that just attached knows none of it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gradrepl.inkernel import probe as kernel_probe


def attach(settings: Mapping[str, str]) -> dict[str, Any]:
    """Install the probe if the kernel has none; what the front end needs to know of it."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return {"error": "this kernel is not an IPython kernel"}
    probe = getattr(shell, kernel_probe.PROBE_ATTRIBUTE, None)
    if probe is None:
        probe = kernel_probe.install(shell, getattr(shell, "kernel", None), settings)
        installed = True
    else:
        probe.configure(settings)
        probe.sent = {}
        installed = False
    comm = getattr(probe.comm, "comm_id", None)
    return {"installed": installed, "comm": comm, "pid": os.getpid()}
