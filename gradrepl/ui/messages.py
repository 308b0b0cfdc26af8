"""Messages the kernel runner posts to the app; the panes react to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from gradrepl.ui.state.worksheet import SessionCell

if TYPE_CHECKING:
    from gradrepl.client.events import Event

KernelState = str  # "starting" | "idle" | "busy" | "dead" | "restarting"


@dataclass
class KernelStateChanged(Message):
    state: KernelState
    reason: str = ""


@dataclass
class KernelLink(Message):
    """Where a kernel on a server runs, and the last round trip to it (ms)."""

    where: str
    latency_ms: float | None = None


@dataclass
class KernelNotes(Message):
    """What a kernel said as it started: what --sandbox=best-effort could not confine."""

    notes: list[str]


@dataclass
class CellStarted(Message):
    cell: SessionCell


@dataclass
class CellOutput(Message):
    """A stream, result, display or error of a running cell."""

    cell: SessionCell
    event: Event


@dataclass
class CellDone(Message):
    """The cell ended; its ProbeReport (if any) holds the whole tensor table after it."""

    cell: SessionCell
    received_at: float  # time.perf_counter() when its last event arrived
