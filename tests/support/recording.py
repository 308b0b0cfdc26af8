"""The format of tests/data/reports/NAME.json: what a real kernel sent the front end.

scripts/record-reports writes these files by running scenarios through a KernelSession
over a real kernel; tests/support/recorded_session.py plays them back to the app. A file
holds one kernel session as steps, in the order they happened:

    {"scenario": NAME, "description": ..., "recorded_with": {"python": ..., "torch": ...},
     "output_limit": N, "steps": [STEP, ...]}

    a cell:    {"kind": "cell", "source": ..., "origin_line": N or null,
                "iopub": [{"msg_type": ..., "content": {...}}, ...],  # what parse_iopub got
                "reply": {"status": ..., "execution_count": N} or null,  # the execute_reply
                "died": REASON or null,  # the kernel died during the cell (no reply then)
                "finished": {"status": ..., "execution_count": ..., "reason": ...},
                "events": ["Stream", "ProbeReport", ...],  # what the real session yielded
                "graphs": {NAME: PROBE_REPLY, ...},  # asked of the probe after this cell
                "completions": [{"code": ..., "cursor": N, "reply": {...}}, ...]}
    a restart: {"kind": "restart"}

Parent ids, message headers and timings are left out: the front end only reads a message's
type and content once it knows the message belongs to the request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Json = dict[str, Any]

REPORTS = Path(__file__).resolve().parent.parent / "data" / "reports"


@dataclass(frozen=True)
class RawMessage:
    """One IOPub message as the front end consumed it."""

    msg_type: str
    content: Json

    def as_jupyter(self, parent_id: str) -> Json:
        """The message in jupyter_client's shape, as parse_iopub takes it."""
        return {
            "header": {"msg_type": self.msg_type},
            "parent_header": {"msg_id": parent_id},
            "msg_type": self.msg_type,
            "content": self.content,
            "metadata": {},
        }

    def to_json(self) -> Json:
        return {"msg_type": self.msg_type, "content": self.content}

    @classmethod
    def from_json(cls, data: Json) -> RawMessage:
        return cls(str(data["msg_type"]), dict(data["content"]))


@dataclass(frozen=True)
class Completion:
    """A complete_request asked after a cell, and the kernel's reply content."""

    code: str
    cursor: int
    reply: Json

    def to_json(self) -> Json:
        return {"code": self.code, "cursor": self.cursor, "reply": self.reply}

    @classmethod
    def from_json(cls, data: Json) -> Completion:
        return cls(str(data["code"]), int(data["cursor"]), dict(data["reply"]))


@dataclass(frozen=True)
class CellStep:
    source: str
    origin_line: int | None
    iopub: tuple[RawMessage, ...]
    reply: Json | None
    died: str | None
    finished: Json
    events: tuple[str, ...]
    graphs: dict[str, Json] = field(default_factory=dict)
    completions: tuple[Completion, ...] = ()

    kind: Literal["cell"] = "cell"

    def to_json(self) -> Json:
        return {
            "kind": "cell",
            "source": self.source,
            "origin_line": self.origin_line,
            "iopub": [m.to_json() for m in self.iopub],
            "reply": self.reply,
            "died": self.died,
            "finished": self.finished,
            "events": list(self.events),
            "graphs": self.graphs,
            "completions": [c.to_json() for c in self.completions],
        }

    @classmethod
    def from_json(cls, data: Json) -> CellStep:
        return cls(
            source=str(data["source"]),
            origin_line=data.get("origin_line"),
            iopub=tuple(RawMessage.from_json(m) for m in data.get("iopub") or ()),
            reply=data.get("reply"),
            died=data.get("died"),
            finished=dict(data["finished"]),
            events=tuple(data.get("events") or ()),
            graphs=dict(data.get("graphs") or {}),
            completions=tuple(Completion.from_json(c) for c in data.get("completions") or ()),
        )


@dataclass(frozen=True)
class RestartStep:
    kind: Literal["restart"] = "restart"

    def to_json(self) -> Json:
        return {"kind": "restart"}


Step = CellStep | RestartStep


@dataclass(frozen=True)
class Recording:
    scenario: str
    description: str = ""
    steps: tuple[Step, ...] = ()
    output_limit: int = 1_000_000
    recorded_with: dict[str, str] = field(default_factory=dict)

    @property
    def cells(self) -> tuple[CellStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, CellStep))

    def to_json(self) -> Json:
        return {
            "scenario": self.scenario,
            "description": self.description,
            "recorded_with": self.recorded_with,
            "output_limit": self.output_limit,
            "steps": [s.to_json() for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: Json) -> Recording:
        steps: list[Step] = []
        for step in data.get("steps") or ():
            steps.append(RestartStep() if step["kind"] == "restart" else CellStep.from_json(step))
        return cls(
            scenario=str(data["scenario"]),
            description=str(data.get("description") or ""),
            steps=tuple(steps),
            output_limit=int(data.get("output_limit") or 1_000_000),
            recorded_with=dict(data.get("recorded_with") or {}),
        )

    def write(self, directory: Path = REPORTS) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.scenario}.json"
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return path


def load(name: str, directory: Path = REPORTS) -> Recording:
    """The recording tests/data/reports/NAME.json."""
    return Recording.from_json(json.loads((directory / f"{name}.json").read_text(encoding="utf-8")))


def names(directory: Path = REPORTS) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.json"))
