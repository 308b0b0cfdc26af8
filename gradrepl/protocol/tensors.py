"""Tensors as the probe describes them, and the frames of a user traceback."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
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


@dataclass(frozen=True, init=False)
class Values:
    """A bounded preview of a tensor's values (nested tuples; "…" marks a cut) and its stats."""

    preview: Any
    truncated: bool = False
    stats: Stats | None = None
    note: str | None = None  # why the values could not be read

    def __init__(self, preview: Any, truncated: bool = False, stats: Stats | None = None, note: str | None = None) -> None:
        fields = self.__dict__  # written once, here: twice as quick as a frozen dataclass's setattr, made by the thousand
        fields["preview"], fields["truncated"], fields["stats"], fields["note"] = preview, truncated, stats, note

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
        fields = {key: parse(d[key]) for key, parse in _FIELDS.items() if key in d}
        fields.setdefault("grad_fn", None)
        return cls(name=d["name"], **fields)

    def patched(self, patch: TensorPatch) -> TensorInfo:
        """This tensor with the fields a later report changed."""
        return replace(self, **patch.fields)


# How each key of a description (a TensorInfo field of the same name) is read; a key left out
# keeps the field's default.
_FIELDS: dict[str, Callable[[Any], Any]] = {
    "shape": tuple, "dtype": str, "device": str, "requires_grad": bool, "is_leaf": bool,
    "grad_fn": lambda v: v, "layout": lambda v: "strided" if v is None else v, "retains_grad": bool,
    "version": lambda v: int(v or 0), "type": lambda v: "Tensor" if v is None else v, "object": lambda v: v,
    "data": lambda v: optional(Values, v), "grad": lambda v: optional(Values, v), "note": lambda v: v,
    "aliases": as_tuple, "module_path": as_tuple, "module_types": as_tuple, "buffer": bool,
    "grad_history": lambda v: optional(GradHistory, v),
}


@dataclass(frozen=True)
class TensorPatch:
    """What changed of a tensor the front end already has (same name, same tensor object): the
    keys whose values differ, a key the new description dropped as null. An optimizer step
    sends each parameter's new values, not its unchanged grad."""

    name: str
    fields: Mapping[str, Any]  # TensorInfo field -> its new value

    @staticmethod
    def between(before: Mapping[str, Any], after: Mapping[str, Any]) -> Json:
        """The patch from one description (JSON) to the next, as JSON."""
        patch: Json = {key: value for key, value in after.items() if before.get(key, _MISSING) != value}
        patch.update((key, None) for key in before.keys() - after.keys())
        patch["name"] = after["name"]
        return patch

    def to_json(self) -> Json:
        return {"name": self.name, **{key: _plain(value) for key, value in self.fields.items()}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TensorPatch:
        return cls(d["name"], {key: parse(d[key]) for key, parse in _FIELDS.items() if key in d})


def _plain(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    return nested_list(value) if isinstance(value, tuple) else value


_MISSING = object()


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
