"""Typed, frozen events parsed from Jupyter messages and the probe's reports.

Everything here is plain data: the front ends (replay, the app) render these without
importing torch, so they can be tested with recorded messages alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from gradrepl.protocol import COMM_TARGET, BackwardEvent, CellReport, ErrorFrame, NonFinite, TensorInfo, apply_delta

CellStatus = Literal["ok", "error", "timeout", "died"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class Stream:
    name: Literal["stdout", "stderr"]
    text: str


@dataclass(frozen=True)
class Result:
    """The value of a cell's last expression (IPython's Out[n])."""

    execution_count: int | None
    data: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.data.get("text/plain", ""))


@dataclass(frozen=True)
class Display:
    """Rich output published with display(); shown by its text/plain form."""

    data: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.data.get("text/plain", ""))


@dataclass(frozen=True)
class Error:
    ename: str
    evalue: str
    traceback: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeReport:
    """What the probe saw after a cell: the whole tensor table (its report carried only the
    changes), the cell's backward calls and its error frames."""

    tensors: tuple[TensorInfo, ...]
    backward: tuple[BackwardEvent, ...] = ()
    frames: tuple[ErrorFrame, ...] = ()
    notes: tuple[str, ...] = ()
    nonfinite: tuple[NonFinite, ...] = ()


@dataclass(frozen=True)
class CellFinished:
    """The last event of every execution."""

    status: CellStatus
    execution_count: int | None
    reason: str = ""


@dataclass(frozen=True)
class OutputCut:
    """Output a cell printed past the limit: counted, not kept."""

    cut: int  # characters left out
    limit: int

    @property
    def note(self) -> str:
        return f"output cut: the cell printed {_size(self.limit + self.cut)}; the first {_size(self.limit)} are kept"


def _size(characters: int) -> str:
    if characters >= 1_000_000:
        return f"{characters / 1_000_000:.1f} million characters"
    return f"{characters:,} characters"


class OutputBudget:
    """Keeps the first `limit` characters of a cell's text output (streams, Out, displays)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit
        self.cut = 0

    def take(self, event: Event) -> Event | None:
        if isinstance(event, Stream):
            kept = self._keep(event.text)
            return Stream(event.name, kept) if kept else None
        if isinstance(event, (Result, Display)) and len(event.text) > self.left:
            data = {**event.data, "text/plain": self._keep(event.text)}
            return Result(event.execution_count, data) if isinstance(event, Result) else Display(data)
        if isinstance(event, (Result, Display)):
            self.left -= len(event.text)
        return event

    def _keep(self, text: str) -> str:
        if len(text) <= self.left:
            self.left -= len(text)
            return text
        kept, self.left = text[: self.left], 0
        self.cut += len(text) - len(kept)
        return kept


Event = Stream | Result | Display | Error | ProbeReport | OutputCut | CellFinished


@dataclass
class CellOutcome:
    """All the events of one execution, gathered."""

    events: list[Event] = field(default_factory=list)

    @property
    def finished(self) -> CellFinished | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, CellFinished) else None

    @property
    def status(self) -> CellStatus:
        finished = self.finished
        return finished.status if finished else "died"

    def stream_text(self, name: str) -> str:
        return "".join(e.text for e in self.events if isinstance(e, Stream) and e.name == name)

    @property
    def result(self) -> Result | None:
        return next((e for e in self.events if isinstance(e, Result)), None)

    @property
    def error(self) -> Error | None:
        return next((e for e in self.events if isinstance(e, Error)), None)

    @property
    def report(self) -> ProbeReport | None:
        return next((e for e in reversed(self.events) if isinstance(e, ProbeReport)), None)


@dataclass
class ProbeState:
    """What the front end keeps of one kernel's probe: its comm ids (told apart from comms
    the user's libraries open) and the tensor table its reports update."""

    comm_ids: set[str] = field(default_factory=set)
    tensors: dict[str, TensorInfo] = field(default_factory=dict)

    def report_from(self, data: dict[str, Any]) -> ProbeReport:
        """Apply a report's tensor delta (names in order, new descriptions, patches) to the table."""
        report = CellReport.from_json(data)
        if report.tensor_names is not None:
            self.tensors = apply_delta(self.tensors, report.tensor_names, report.tensors_changed, report.tensors_patched)
        return ProbeReport(tuple(self.tensors.values()), report.backward, report.frames, report.notes, report.nonfinite)


def parse_iopub(msg: dict[str, Any], probe: ProbeState) -> Event | None:
    """The event an IOPub message carries, or None for bookkeeping messages."""
    kind = msg["header"]["msg_type"]
    content = msg["content"]
    if kind == "stream":
        return Stream(content["name"], content["text"])
    if kind == "execute_result":
        return Result(content.get("execution_count"), dict(content.get("data") or {}))
    if kind == "display_data":
        return Display(dict(content.get("data") or {}))
    if kind == "error":
        return Error(content.get("ename", ""), content.get("evalue", ""), tuple(content.get("traceback") or ()))
    if kind == "comm_open" and content.get("target_name") == COMM_TARGET:
        probe.comm_ids.add(content["comm_id"])
        return None
    if kind == "comm_msg" and content.get("comm_id") in probe.comm_ids:
        return probe.report_from(content.get("data") or {})
    return None
