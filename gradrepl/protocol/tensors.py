"""Tensors as the probe describes them, and the frames of a user traceback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gradrepl.protocol.health import GradHistory
from gradrepl.protocol.json_forms import Json, as_tuple, nested_list, nested_tuple, optional


@dataclass(frozen=True)
class Stats:
    norm: float | str  # "nan" or "inf" when the values hold them
    min: float | None
    max: float | None
    nan: int
    inf: int
    sampled: bool
    sample_size: int

    def to_json(self) -> Json:
        return {"norm": self.norm, "min": self.min, "max": self.max, "nan": self.nan, "inf": self.inf,
                "sampled": self.sampled, "sample_size": self.sample_size}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Stats:
        return cls(d["norm"], d["min"], d["max"], int(d["nan"]), int(d["inf"]), bool(d["sampled"]), int(d["sample_size"]))


@dataclass(frozen=True)
class Values:
    """A bounded preview of a tensor's values (nested tuples; "…" marks a cut) and its stats."""

    preview: Any
    truncated: bool = False
    stats: Stats | None = None
    note: str | None = None  # why the values could not be read

    def to_json(self) -> Json:
        data: Json = {"preview": nested_list(self.preview), "truncated": self.truncated,
                      "stats": None if self.stats is None else self.stats.to_json()}
        if self.note is not None:
            data["note"] = self.note
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Values:
        return cls(nested_tuple(d.get("preview")), bool(d.get("truncated")), optional(Stats, d.get("stats")), d.get("note"))


@dataclass(frozen=True)
class TensorInfo:
    """One named tensor as the inspector lists it."""

    name: str
    shape: tuple[int | None, ...]  # None: a nested tensor's dimension whose size varies
    dtype: str
    device: str
    requires_grad: bool
    is_leaf: bool
    grad_fn: str | None
    layout: str = "strided"
    retains_grad: bool = False
    version: int = 0
    type: str = "Tensor"
    object: int | None = None  # the probe's number for the tensor object itself
    data: Values | None = None
    grad: Values | None = None
    note: str | None = None
    # The same tensor object's other names (`c = x`: x's description lists c), in the order found.
    aliases: tuple[str, ...] = ()
    # A module's parameter or buffer: the user's module and the submodules down to the one that
    # holds it, by label (("model", "0") for model.0.weight), their classes, and which it is.
    module_path: tuple[str, ...] = ()
    module_types: tuple[str, ...] = ()
    buffer: bool = False
    grad_history: GradHistory | None = None  # its grad's norm over the backward calls that wrote it

    @property
    def label(self) -> str:
        """The name within its module ("weight" for model.0.weight); else the name."""
        if not self.module_path:
            return self.name
        return self.name[len(".".join(self.module_path)) + 1:]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def to_json(self) -> Json:
        data: Json = {
            "name": self.name, "shape": list(self.shape), "dtype": self.dtype, "device": self.device,
            "layout": self.layout, "requires_grad": self.requires_grad, "is_leaf": self.is_leaf,
            "grad_fn": self.grad_fn, "retains_grad": self.retains_grad, "version": self.version,
            "type": self.type, "object": self.object,
            "data": None if self.data is None else self.data.to_json(),
            "grad": None if self.grad is None else self.grad.to_json(),
            "note": self.note,
        }
        # Only where they apply, as the probe sends them (most tensors have neither).
        if self.aliases:
            data["aliases"] = list(self.aliases)
        if self.module_path:
            data["module_path"] = list(self.module_path)
            data["module_types"] = list(self.module_types)
            data["buffer"] = self.buffer
        if self.grad_history is not None:
            data["grad_history"] = self.grad_history.to_json()
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TensorInfo:
        return cls(
            name=d["name"], shape=tuple(d["shape"]), dtype=d["dtype"], device=d["device"],
            requires_grad=bool(d["requires_grad"]), is_leaf=bool(d["is_leaf"]), grad_fn=d.get("grad_fn"),
            layout=d.get("layout", "strided"), retains_grad=bool(d.get("retains_grad", False)),
            version=int(d.get("version", 0)), type=d.get("type", "Tensor"), object=d.get("object"),
            data=optional(Values, d.get("data")), grad=optional(Values, d.get("grad")), note=d.get("note"),
            aliases=as_tuple(d.get("aliases")), module_path=as_tuple(d.get("module_path")),
            module_types=as_tuple(d.get("module_types")), buffer=bool(d.get("buffer", False)),
            grad_history=optional(GradHistory, d.get("grad_history")),
        )


# ---------------------------------------------------------------- error frames


@dataclass(frozen=True)
class ErrorFrame:
    filename: str
    lineno: int | None
    name: str
    text: str
    script_file: str | None = None
    script_line: int | None = None

    @property
    def in_script(self) -> bool:
        return self.script_line is not None

    def to_json(self) -> Json:
        return {"filename": self.filename, "lineno": self.lineno, "name": self.name, "text": self.text,
                "script_file": self.script_file, "script_line": self.script_line}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ErrorFrame:
        return cls(str(d.get("filename") or ""), d.get("lineno"), str(d.get("name") or ""), str(d.get("text") or ""),
                   d.get("script_file"), d.get("script_line"))
