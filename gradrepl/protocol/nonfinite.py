"""Where a NaN or an Inf was born (`--nan-check`): the op whose output was not finite while
its inputs were, in the forward pass (a torch function the cell called) or in backward (a
node whose gradients in were finite and whose gradients out were not)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gradrepl.protocol.json_forms import Json, optional
from gradrepl.protocol.node_grads import GradPreview, SavedValue

Phase = Literal["forward", "backward"]
NAN_CHECK_ENV = "GRADREPL_NAN_CHECK"  # "1" in the kernel's environment: check every op's output
NAN_CHECK_REQUEST = "nan_check"  # {"request": "nan_check", "on": bool}: the app's toggle


@dataclass(frozen=True)
class NonFinite:
    phase: Phase
    op: str  # torch.log, Tensor.div, MulBackward0
    cell: int | None  # the execution count of the cell that ran it (for backward: that made the node)
    line: int | None  # the line in that cell (or in its script, `file`)
    inputs: tuple[GradPreview | None, ...]  # forward: the op's tensor arguments; backward: the grads in
    output: tuple[GradPreview | None, ...]  # forward: its results; backward: the grads out
    file: str | None = None  # the script the cell came from
    source: str | None = None  # the line's text
    saved: tuple[SavedValue, ...] = ()  # backward: the tensors the node saved (a non-finite one explains it)

    @property
    def where(self) -> str:
        cell = f"In [{self.cell}]" if self.cell is not None else "a cell"
        if self.file and self.line is not None:
            return f"{self.file.rsplit('/', 1)[-1]}, line {self.line} ({cell})"
        return f"{cell}, line {self.line}" if self.line is not None else cell

    def to_json(self) -> Json:
        data: Json = {"phase": self.phase, "op": self.op, "cell": self.cell, "line": self.line,
                      "inputs": [None if v is None else v.to_json() for v in self.inputs],
                      "output": [None if v is None else v.to_json() for v in self.output]}
        if self.file is not None:
            data["file"] = self.file
        if self.source is not None:
            data["source"] = self.source
        if self.saved:
            data["saved"] = [value.to_json() for value in self.saved]
        return data

    @property
    def saved_nonfinite(self) -> tuple[SavedValue, ...]:
        """The saved tensors that are not finite: a backward node given finite gradients that
        saved one of these passes on what the forward pass made, it made nothing."""
        return tuple(value for value in self.saved if value.value is not None and not finite(value.value))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NonFinite:
        phase: Phase = "backward" if d.get("phase") == "backward" else "forward"
        return cls(phase, str(d.get("op")), d.get("cell"), d.get("line"),
                   tuple(optional(GradPreview, v) for v in d.get("inputs") or ()),
                   tuple(optional(GradPreview, v) for v in d.get("output") or ()), d.get("file"), d.get("source"),
                   tuple(SavedValue.from_json(v) for v in d.get("saved") or ()))


def finite(value: GradPreview | None) -> bool:
    """Whether a gradient or tensor holds no nan or inf, as its stats (or its one value) say."""
    if value is None:
        return True
    stats = value.values.stats
    if stats is not None:
        return not stats.nan and not stats.inf
    return not _holds_nonfinite(value.values.preview)


def _holds_nonfinite(preview: Any) -> bool:
    if isinstance(preview, tuple):
        return any(_holds_nonfinite(item) for item in preview)
    return preview in ("nan", "inf", "-inf")
