"""The gradients each node of a backward call received and passed on (`--node-grads`).

For a call described in full, the tracer records every node the engine ran, in the order it
ran them: what flowed in (`grad_outputs`: one gradient per output of the forward op) and
what it passed on (`grad_inputs`: one per input of the forward op, each going to the node in
`next` at the same place). With the tensors the node saved (their values as it used them),
that is the chain rule of the call, number by number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gradrepl.protocol.json_forms import Json, optional
from gradrepl.protocol.tensors import Values

NodeGradsMode = Literal["auto", "on", "off"]
NODE_GRADS_MODES: tuple[NodeGradsMode, ...] = ("auto", "on", "off")
NODE_GRADS_ENV = "GRADREPL_NODE_GRADS"  # auto | on | off in the kernel's environment (default auto)
AUTO_NODE_LIMIT = 2000  # auto: calls whose graphs have at most this many nodes
NOT_PASSED = -1  # a `next` number: the input needs no gradient, or its node did not run


@dataclass(frozen=True, init=False)
class GradPreview:
    """One gradient tensor: its shape, dtype, a preview of its values and their stats."""

    shape: tuple[int, ...]
    dtype: str
    values: Values

    def __init__(self, shape: tuple[int, ...], dtype: str, values: Values) -> None:
        fields = self.__dict__  # as Values does: one for every gradient of every node
        fields["shape"], fields["dtype"], fields["values"] = shape, dtype, values

    def to_json(self) -> Json:
        return {"shape": list(self.shape), "dtype": self.dtype, **self.values.to_json()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GradPreview:
        return cls(tuple(d.get("shape") or ()), str(d.get("dtype") or ""), Values.from_json(d))

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


@dataclass(frozen=True)
class SavedValue:
    """A tensor a node saved for its backward, as the node used it."""

    name: str  # "other" for _saved_other
    tensor: str | None  # the user's name for it
    value: GradPreview | None
    note: str | None = None  # why its values could not be read

    def to_json(self) -> Json:
        data: Json = {"name": self.name, "tensor": self.tensor, "value": None if self.value is None else self.value.to_json()}
        if self.note is not None:
            data["note"] = self.note
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SavedValue:
        return cls(str(d.get("name")), d.get("tensor"), optional(GradPreview, d.get("value")), d.get("note"))


def _previews(items: Any) -> tuple[GradPreview | None, ...]:
    return tuple(optional(GradPreview, item) for item in items or ())


@dataclass(frozen=True, init=False)
class NodeGrads:
    """One node of a call as the engine ran it."""

    node: str  # MulBackward0
    grad_outputs: tuple[GradPreview | None, ...]  # what flowed in
    grad_inputs: tuple[GradPreview | None, ...]  # what it passed on, one per input
    next: tuple[int, ...] = ()  # per input, the engine-order index of the node it went to (NOT_PASSED: none)
    tensor: str | None = None  # the user's name for the tensor the node produced
    leaf: str | None = None  # AccumulateGrad: the leaf it wrote into
    saved: tuple[SavedValue, ...] = ()
    values: tuple[tuple[str, str], ...] = ()  # other saved values: ("exponent", "2")

    def __init__(self, node: str, grad_outputs: tuple[GradPreview | None, ...], grad_inputs: tuple[GradPreview | None, ...],
                 next: tuple[int, ...] = (), tensor: str | None = None, leaf: str | None = None,
                 saved: tuple[SavedValue, ...] = (), values: tuple[tuple[str, str], ...] = ()) -> None:
        fields = self.__dict__  # as Values does: one for every node of a call
        fields["node"], fields["grad_outputs"], fields["grad_inputs"], fields["next"] = node, grad_outputs, grad_inputs, next
        fields["tensor"], fields["leaf"], fields["saved"], fields["values"] = tensor, leaf, saved, values

    def to_json(self) -> Json:
        data: Json = {"node": self.node,
                      "grad_outputs": [None if g is None else g.to_json() for g in self.grad_outputs],
                      "grad_inputs": [None if g is None else g.to_json() for g in self.grad_inputs],
                      "next": list(self.next), "tensor": self.tensor}
        if self.leaf is not None:
            data["leaf"] = self.leaf
        if self.saved:
            data["saved"] = [s.to_json() for s in self.saved]
        if self.values:
            data["values"] = dict(self.values)
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NodeGrads:
        return cls(str(d.get("node")), _previews(d.get("grad_outputs")), _previews(d.get("grad_inputs")),
                   tuple(int(n) for n in d.get("next") or ()), d.get("tensor"), d.get("leaf"),
                   tuple(SavedValue.from_json(s) for s in d.get("saved") or ()),
                   tuple((str(k), str(v)) for k, v in (d.get("values") or {}).items()))


def node_grads_mode(text: str | None) -> NodeGradsMode:
    """The mode an environment value names; auto for anything else."""
    return "on" if text == "on" else "off" if text == "off" else "auto"
