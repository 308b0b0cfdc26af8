"""One backward() or autograd.grad() call as the tracer saw it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gradrepl.protocol.json_forms import Json, as_tuple, nested_list, nested_tuple, optional
from gradrepl.protocol.tensors import Values

BackwardKind = Literal["backward", "grad"]
NodeOrder = Literal["exact", "predicted"]  # recorded as the engine ran them, or the engine's rule replayed


@dataclass(frozen=True)
class RootLabel:
    """A root of a backward call: the user's name for it, or what it is."""

    name: str | None
    description: str  # "2x2 float32 tensor from MulBackward0"
    grad_fn: str | None
    shape: tuple[int | None, ...] = ()  # None as in TensorInfo.shape
    value: Values | None = None

    @property
    def label(self) -> str:
        return self.name or self.description

    def to_json(self) -> Json:
        return {"name": self.name, "description": self.description, "grad_fn": self.grad_fn,
                "shape": list(self.shape), "value": None if self.value is None else self.value.to_json()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RootLabel:
        return cls(d.get("name"), str(d.get("description") or ""), d.get("grad_fn"), tuple(d.get("shape") or ()),
                   optional(Values, d.get("value")))


@dataclass(frozen=True)
class LeafChange:
    """A `.grad` a backward call wrote: fresh (there was none) or accumulated (added into one)."""

    name: str
    before: Values | None
    after: Values | None
    accumulated: bool

    def to_json(self) -> Json:
        return {"name": self.name, "before": None if self.before is None else self.before.to_json(),
                "after": None if self.after is None else self.after.to_json(), "accumulated": self.accumulated}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LeafChange:
        return cls(str(d.get("name")), optional(Values, d.get("before")), optional(Values, d.get("after")),
                   bool(d.get("accumulated")))


@dataclass(frozen=True)
class LeafJacobian:
    """J of a call's root with respect to one leaf (a row per root element, a column per leaf element)."""

    leaf: str
    root_shape: tuple[int, ...]
    leaf_shape: tuple[int, ...]
    matrix: tuple[tuple[float, ...], ...]
    vjp: tuple[float, ...]  # vᵀ·J
    grad_change: tuple[float, ...] | None = None  # what the call added to the grad (or returned)
    matches: bool | None = None  # grad_change equals vᵀ·J

    def to_json(self) -> Json:
        return {"leaf": self.leaf, "root_shape": list(self.root_shape), "leaf_shape": list(self.leaf_shape),
                "matrix": nested_list(self.matrix), "vjp": list(self.vjp),
                "grad_change": None if self.grad_change is None else list(self.grad_change), "matches": self.matches}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LeafJacobian:
        change = d.get("grad_change")
        return cls(str(d.get("leaf")), tuple(d.get("root_shape") or ()), tuple(d.get("leaf_shape") or ()),
                   nested_tuple(d.get("matrix") or ()), tuple(d.get("vjp") or ()),
                   None if change is None else tuple(change), d.get("matches"))


@dataclass(frozen=True)
class JacobianView:
    """The vector-Jacobian view of a call with one non-scalar root and its v; or why there is none."""

    root: str | None = None
    v: tuple[float, ...] = ()  # flattened
    leaves: tuple[LeafJacobian, ...] = ()
    note: str | None = None

    def to_json(self) -> Json:
        data: Json = {"root": self.root}
        if self.note is not None:
            data["note"] = self.note
        if self.v or self.leaves:
            data["v"] = list(self.v)
            data["leaves"] = [leaf.to_json() for leaf in self.leaves]
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> JacobianView:
        return cls(d.get("root"), tuple(d.get("v") or ()), tuple(LeafJacobian.from_json(x) for x in d.get("leaves") or ()),
                   d.get("note"))


@dataclass(frozen=True)
class BackwardEvent:
    """One `backward` or `autograd.grad` call, traced in the kernel."""

    kind: BackwardKind
    cell: int | None = None
    roots: tuple[RootLabel, ...] = ()
    gradient: tuple[Values | None, ...] | None = None  # the `v` passed, per root; None: not passed
    retain_graph: bool | None = None
    create_graph: bool = False
    inputs: tuple[str, ...] | None = None
    nodes: tuple[str, ...] = ()  # in the order the engine ran them (at most 200)
    nodes_total: int = 0
    node_order: NodeOrder = "exact"
    leaves: tuple[LeafChange, ...] = ()
    grads: tuple[Values | None, ...] | None = None  # what autograd.grad returned
    error: str | None = None
    jacobian: JacobianView | None = None
    notes: tuple[str, ...] = ()
    walk_cut: bool = False  # the graph had more nodes than were walked: nodes_total is a lower bound

    def to_json(self) -> Json:
        def values(items: tuple[Values | None, ...] | None) -> list[Json | None] | None:
            return None if items is None else [None if v is None else v.to_json() for v in items]

        data: Json = {
            "cell": self.cell, "kind": self.kind, "roots": [r.to_json() for r in self.roots],
            "gradient": values(self.gradient), "retain_graph": self.retain_graph, "create_graph": self.create_graph,
            "inputs": None if self.inputs is None else list(self.inputs), "nodes": list(self.nodes),
            "nodes_total": self.nodes_total, "node_order": self.node_order,
            "leaves": [leaf.to_json() for leaf in self.leaves], "grads": values(self.grads), "error": self.error,
            "jacobian": None if self.jacobian is None else self.jacobian.to_json(), "notes": list(self.notes),
        }
        if self.walk_cut:
            data["walk_cut"] = True
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BackwardEvent:
        def values(items: Sequence[Any] | None) -> tuple[Values | None, ...] | None:
            return None if items is None else tuple(optional(Values, v) for v in items)

        inputs = d.get("inputs")
        return cls(
            kind="grad" if d.get("kind") == "grad" else "backward", cell=d.get("cell"),
            roots=tuple(RootLabel.from_json(r) for r in d.get("roots") or ()), gradient=values(d.get("gradient")),
            retain_graph=d.get("retain_graph"), create_graph=bool(d.get("create_graph")),
            inputs=None if inputs is None else tuple(str(i) for i in inputs), nodes=as_tuple(d.get("nodes")),
            nodes_total=int(d.get("nodes_total") or len(d.get("nodes") or ())),
            node_order="predicted" if d.get("node_order") == "predicted" else "exact",
            leaves=tuple(LeafChange.from_json(x) for x in d.get("leaves") or ()), grads=values(d.get("grads")),
            error=d.get("error"), jacobian=optional(JacobianView, d.get("jacobian")), notes=as_tuple(d.get("notes")),
            walk_cut=bool(d.get("walk_cut")),
        )
