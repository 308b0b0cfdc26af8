"""What the probe sends after a cell, and the explanations the front end adds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gradrepl.protocol.backward import BackwardEvent
from gradrepl.protocol.json_forms import Json, as_tuple
from gradrepl.protocol.nonfinite import NonFinite
from gradrepl.protocol.tensors import ErrorFrame, TensorInfo, TensorPatch


@dataclass(frozen=True)
class CellReport:
    """The probe's message after a cell. Tensors travel as a delta: every name in order, the
    descriptions of tensors new under their name, and patches of those that changed (see
    `apply_delta`)."""

    execution_count: int | None = None
    tensor_names: tuple[str, ...] | None = None  # None: no tensor table in this report
    tensors_changed: tuple[TensorInfo, ...] = ()
    backward: tuple[BackwardEvent, ...] = ()
    frames: tuple[ErrorFrame, ...] = ()
    notes: tuple[str, ...] = ()
    nonfinite: tuple[NonFinite, ...] = ()  # where NaN or Inf was born in the cell (--nan-check), first first
    tensors_patched: tuple[TensorPatch, ...] = ()  # changed tensors the table has (same name, same object)

    def to_json(self) -> Json:
        data: Json = {"execution_count": self.execution_count, "notes": list(self.notes),
                      "backward": [e.to_json() for e in self.backward], "frames": [f.to_json() for f in self.frames]}
        if self.nonfinite:
            data["nonfinite"] = [n.to_json() for n in self.nonfinite]
        if self.tensor_names is not None:
            data["tensor_names"] = list(self.tensor_names)
            data["tensors_changed"] = [t.to_json() for t in self.tensors_changed]
            if self.tensors_patched:
                data["tensors_patched"] = [t.to_json() for t in self.tensors_patched]
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CellReport:
        names = d.get("tensor_names")
        return cls(
            d.get("execution_count"), None if names is None else tuple(names),
            tuple(TensorInfo.from_json(t) for t in d.get("tensors_changed") or ()),
            tuple(BackwardEvent.from_json(e) for e in d.get("backward") or ()),
            tuple(ErrorFrame.from_json(f) for f in d.get("frames") or ()), as_tuple(d.get("notes")),
            tuple(NonFinite.from_json(n) for n in d.get("nonfinite") or ()),
            tuple(TensorPatch.from_json(t) for t in d.get("tensors_patched") or ()),
        )


def apply_delta(table: Mapping[str, TensorInfo], names: Sequence[str], changed: Sequence[TensorInfo],
                patched: Sequence[TensorPatch] = ()) -> dict[str, TensorInfo]:
    """The front end's tensor table after a report: its names in order, each with its new
    description, or the one the table had with its patch applied, or else the one it had."""
    by_name = {t.name: t for t in changed}
    patches = {p.name: p for p in patched}
    result: dict[str, TensorInfo] = {}
    for name in names:
        known = by_name.get(name)
        if known is None:
            known = table.get(name)
            patch = patches.get(name)
            if known is not None and patch is not None:
                known = known.patched(patch)
        if known is not None:  # a name never described to this front end is left out
            result[name] = known
    return result


# ---------------------------------------------------------------- explanations


@dataclass(frozen=True)
class Explanation:
    """A known autograd error in plain words, with the fix (made in the front end)."""

    title: str
    why: str
    fix: str

    def to_json(self) -> Json:
        return {"title": self.title, "why": self.why, "fix": self.fix}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Explanation:
        return cls(str(d["title"]), str(d["why"]), str(d["fix"]))
