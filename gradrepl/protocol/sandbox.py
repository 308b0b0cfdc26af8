"""`--sandbox`: what the front end asks the kernel to confine itself to, carried in the
kernel's environment as JSON (SANDBOX_ENV), and the limits it sets.

The kernel sets processes, open files and file size as rlimits it cannot raise again; CPU time
per cell is watched by the front end, from outside the kernel, and the memory limit is the
kernel's RLIMIT_AS (MEMORY_LIMIT_ENV), with a default under --sandbox."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

SANDBOX_ENV = "GRADREPL_SANDBOX"
SANDBOX_PARTLY = "gradrepl: --sandbox=best-effort: not confined: "  # the kernel's line as it starts, then what
SandboxMode = Literal["strict", "best-effort"]
SANDBOX_MODES: tuple[SandboxMode, ...] = ("strict", "best-effort")

# name on the command line (--sandbox-limit NAME=VALUE) -> field, and what its value is
LIMIT_NAMES = {"cpu": "cpu_seconds", "processes": "processes", "open-files": "open_files", "file-size": "file_size"}


@dataclass(frozen=True)
class SandboxRequest:
    mode: SandboxMode
    writable: tuple[str, ...]  # absolute folders it may write in, besides its own
    cpu_seconds: float = 600.0  # CPU time one cell may use (all the kernel's threads)
    processes: int = 256  # processes and threads it may start, more than its user runs when it starts
    open_files: int = 1024
    file_size: int = 4 << 30  # bytes: the largest file it may write

    def to_json(self) -> str:
        return json.dumps({"mode": self.mode, "writable": list(self.writable), "cpu_seconds": self.cpu_seconds,
                           "processes": self.processes, "open_files": self.open_files, "file_size": self.file_size})

    @classmethod
    def from_json(cls, text: str) -> SandboxRequest:
        """The request; ValueError when `text` is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("mode") not in SANDBOX_MODES or not isinstance(data.get("writable"), list):
            raise ValueError(f"not a sandbox request: {text[:100]!r}")
        request = cls(data["mode"], tuple(str(folder) for folder in data["writable"]))
        numbers = {field: data[field] for field in LIMIT_NAMES.values() if field in data}
        if any(isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 for v in numbers.values()):
            raise ValueError(f"not a sandbox request: {text[:100]!r}")
        limits: dict[str, Any] = {k: (float(v) if k == "cpu_seconds" else int(v)) for k, v in numbers.items()}
        return replace(request, **limits)

    def limit_option(self, field: str) -> str:
        """How the command line sets `field`: --sandbox-limit cpu=600."""
        name = next(name for name, f in LIMIT_NAMES.items() if f == field)
        return f"--sandbox-limit {name}={getattr(self, field):g}"


def sandbox_request(env: Mapping[str, str] | None) -> SandboxRequest | None:
    """The request a kernel's environment carries, or None (no --sandbox, or not readable)."""
    text = (env or {}).get(SANDBOX_ENV)
    if not text:
        return None
    try:
        return SandboxRequest.from_json(text)
    except ValueError:
        return None


def default_memory_limit() -> int:
    """The address space a sandboxed kernel gets without --memory-limit: half the machine's
    memory, at least 2 GiB (torch alone maps some 700 MB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return max(2 << 30, total // 2)
