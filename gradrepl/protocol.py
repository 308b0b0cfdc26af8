"""Everything that crosses between the kernel process and the front end.

The probe (gradrepl.inkernel) sends plain JSON on a Jupyter comm; the front end
(gradrepl.client, gradrepl.render, gradrepl.ui, gradrepl.headless) reads it back into the
typed, frozen records defined here, and never looks inside the JSON itself. Both sides
import this module, so it imports nothing but the standard library.

Each record has `to_json()` (plain dicts, lists, str, int, float, bool, None) and
`from_json()`; `from_json(to_json(r)) == r`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

COMM_TARGET = "gradrepl.probe"  # the comm the probe opens; its messages carry CellReport and replies
ORIGIN_KEY = "gradrepl"  # execute_request metadata key: {"file": ..., "line": ...} of the cell

BACKWARD_LOG_ENV = "GRADREPL_BACKWARD_LOG"  # "0" in the kernel's environment: no backward tracing
MEMORY_LIMIT_ENV = "GRADREPL_MEMORY_LIMIT"  # bytes of address space the kernel may use (RLIMIT_AS)
PARENT_PID_ENV = "GRADREPL_PARENT_PID"  # the launching process: the kernel ends when it does
RUNTIME_DIR_PREFIX = "gradrepl-"  # the kernel's private directory: /tmp/gradrepl-XXXXXXXX

Json = dict[str, Any]


def size_text(size: int) -> str:
    """Bytes as --memory-limit takes them: 536870912 is 512M, 1610612736 is 1.5G."""
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g}{unit}"
    return str(size)


def _tuple(items: Sequence[Any] | None) -> tuple[Any, ...]:
    return tuple(items) if items else ()


def _optional(cls: Any, data: Any) -> Any:
    return None if data is None else cls.from_json(data)


def _nested_tuple(value: Any) -> Any:
    """Lists (nested) as tuples, so a record holding a preview or a matrix stays hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(_nested_tuple(v) for v in value)
    return value


def _nested_list(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_nested_list(v) for v in value]
    return value


# ---------------------------------------------------------------- tensor values


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
        data: Json = {"preview": _nested_list(self.preview), "truncated": self.truncated,
                      "stats": None if self.stats is None else self.stats.to_json()}
        if self.note is not None:
            data["note"] = self.note
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Values:
        return cls(_nested_tuple(d.get("preview")), bool(d.get("truncated")), _optional(Stats, d.get("stats")), d.get("note"))


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

    def to_json(self) -> Json:
        return {
            "name": self.name, "shape": list(self.shape), "dtype": self.dtype, "device": self.device,
            "layout": self.layout, "requires_grad": self.requires_grad, "is_leaf": self.is_leaf,
            "grad_fn": self.grad_fn, "retains_grad": self.retains_grad, "version": self.version,
            "type": self.type, "object": self.object,
            "data": None if self.data is None else self.data.to_json(),
            "grad": None if self.grad is None else self.grad.to_json(),
            "note": self.note,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TensorInfo:
        return cls(
            name=d["name"], shape=tuple(d["shape"]), dtype=d["dtype"], device=d["device"],
            requires_grad=bool(d["requires_grad"]), is_leaf=bool(d["is_leaf"]), grad_fn=d.get("grad_fn"),
            layout=d.get("layout", "strided"), retains_grad=bool(d.get("retains_grad", False)),
            version=int(d.get("version", 0)), type=d.get("type", "Tensor"), object=d.get("object"),
            data=_optional(Values, d.get("data")), grad=_optional(Values, d.get("grad")), note=d.get("note"),
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


# ---------------------------------------------------------------- backward calls


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
                   _optional(Values, d.get("value")))


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
        return cls(str(d.get("name")), _optional(Values, d.get("before")), _optional(Values, d.get("after")),
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
                "matrix": _nested_list(self.matrix), "vjp": list(self.vjp),
                "grad_change": None if self.grad_change is None else list(self.grad_change), "matches": self.matches}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LeafJacobian:
        change = d.get("grad_change")
        return cls(str(d.get("leaf")), tuple(d.get("root_shape") or ()), tuple(d.get("leaf_shape") or ()),
                   _nested_tuple(d.get("matrix") or ()), tuple(d.get("vjp") or ()),
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
            return None if items is None else tuple(_optional(Values, v) for v in items)

        inputs = d.get("inputs")
        return cls(
            kind="grad" if d.get("kind") == "grad" else "backward", cell=d.get("cell"),
            roots=tuple(RootLabel.from_json(r) for r in d.get("roots") or ()), gradient=values(d.get("gradient")),
            retain_graph=d.get("retain_graph"), create_graph=bool(d.get("create_graph")),
            inputs=None if inputs is None else tuple(str(i) for i in inputs), nodes=_tuple(d.get("nodes")),
            nodes_total=int(d.get("nodes_total") or len(d.get("nodes") or ())),
            node_order="predicted" if d.get("node_order") == "predicted" else "exact",
            leaves=tuple(LeafChange.from_json(x) for x in d.get("leaves") or ()), grads=values(d.get("grads")),
            error=d.get("error"), jacobian=_optional(JacobianView, d.get("jacobian")), notes=_tuple(d.get("notes")),
            walk_cut=bool(d.get("walk_cut")),
        )


# ---------------------------------------------------------------- autograd graphs


SavedState = Literal["ok", "modified", "freed", "unreadable"]


@dataclass(frozen=True)
class SavedTensor:
    """A tensor a node saved for its backward."""

    name: str
    state: SavedState = "ok"
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    tensor: str | None = None  # the user's name for it
    version: int | None = None  # for "modified": its version now, and when it was saved
    saved_version: int | None = None
    detail: str | None = None  # for "unreadable"

    def to_json(self) -> Json:
        data: Json = {"name": self.name, "state": self.state}
        if self.shape is not None:
            data.update(shape=list(self.shape), dtype=self.dtype, tensor=self.tensor)
        if self.state == "modified":
            data.update(version=self.version, saved_version=self.saved_version)
        if self.detail is not None:
            data["detail"] = self.detail
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SavedTensor:
        shape = d.get("shape")
        state = d.get("state")
        return cls(str(d.get("name")), state if state in ("modified", "freed", "unreadable") else "ok",
                   None if shape is None else tuple(shape), d.get("dtype"), d.get("tensor"), d.get("version"),
                   d.get("saved_version"), d.get("detail"))


@dataclass(frozen=True)
class GraphLeaf:
    name: str | None
    shape: tuple[int, ...]
    dtype: str

    def to_json(self) -> Json:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GraphLeaf:
        return cls(d.get("name"), tuple(d.get("shape") or ()), str(d.get("dtype") or ""))


@dataclass(frozen=True)
class GraphNode:
    name: str  # MulBackward0
    tensor: str | None = None  # the user's name for the tensor this node produced
    leaf: GraphLeaf | None = None  # for AccumulateGrad: the leaf it accumulates into
    saved: tuple[SavedTensor, ...] = ()
    values: tuple[tuple[str, str], ...] = ()  # other saved values: ("exponent", "2")
    next: tuple[int, ...] = ()  # numbers of the nodes it passes gradients to; -1: not described
    no_grad_inputs: int = 0
    note: str | None = None

    def to_json(self) -> Json:
        data: Json = {"name": self.name, "tensor": self.tensor, "saved": [s.to_json() for s in self.saved],
                      "values": dict(self.values), "next": list(self.next), "no_grad_inputs": self.no_grad_inputs}
        if self.leaf is not None:
            data["leaf"] = self.leaf.to_json()
        if self.note is not None:
            data["note"] = self.note
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GraphNode:
        return cls(str(d.get("name")), d.get("tensor"), _optional(GraphLeaf, d.get("leaf")),
                   tuple(SavedTensor.from_json(s) for s in d.get("saved") or ()),
                   tuple((str(k), str(v)) for k, v in (d.get("values") or {}).items()),
                   tuple(int(n) for n in d.get("next") or ()), int(d.get("no_grad_inputs") or 0), d.get("note"))


@dataclass(frozen=True)
class Graph:
    """The autograd graph behind a named tensor: nodes in depth-first order from its grad_fn."""

    root: str
    shape: tuple[int, ...] = ()
    dtype: str = ""
    requires_grad: bool = False
    is_leaf: bool = True
    nodes: tuple[GraphNode, ...] = ()
    total: int = 0  # nodes counted (a lower bound when walk_cut)
    walk_cut: bool = False
    error: str | None = None  # why there is no graph to show

    @property
    def described(self) -> int:
        return len(self.nodes)

    def to_json(self) -> Json:
        if self.error is not None:
            return {"root": self.root, "error": self.error}
        return {"root": self.root, "shape": list(self.shape), "dtype": self.dtype, "requires_grad": self.requires_grad,
                "is_leaf": self.is_leaf, "nodes": [n.to_json() for n in self.nodes], "total": self.total,
                "described": self.described, "walk_cut": self.walk_cut}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Graph:
        return cls(str(d.get("root")), tuple(d.get("shape") or ()), str(d.get("dtype") or ""),
                   bool(d.get("requires_grad")), bool(d.get("is_leaf", True)),
                   tuple(GraphNode.from_json(n) for n in d.get("nodes") or ()), int(d.get("total") or 0),
                   bool(d.get("walk_cut")), d.get("error"))

    @classmethod
    def failed(cls, root: str, error: str) -> Graph:
        return cls(root, error=error)


# ---------------------------------------------------------------- what the probe sends


@dataclass(frozen=True)
class CellReport:
    """The probe's message after a cell. Tensors travel as a delta: every name in order, and
    the descriptions that changed since the last report (see `apply_delta`)."""

    execution_count: int | None = None
    tensor_names: tuple[str, ...] | None = None  # None: no tensor table in this report
    tensors_changed: tuple[TensorInfo, ...] = ()
    backward: tuple[BackwardEvent, ...] = ()
    frames: tuple[ErrorFrame, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> Json:
        data: Json = {"execution_count": self.execution_count, "notes": list(self.notes),
                      "backward": [e.to_json() for e in self.backward], "frames": [f.to_json() for f in self.frames]}
        if self.tensor_names is not None:
            data["tensor_names"] = list(self.tensor_names)
            data["tensors_changed"] = [t.to_json() for t in self.tensors_changed]
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CellReport:
        names = d.get("tensor_names")
        return cls(
            d.get("execution_count"), None if names is None else tuple(names),
            tuple(TensorInfo.from_json(t) for t in d.get("tensors_changed") or ()),
            tuple(BackwardEvent.from_json(e) for e in d.get("backward") or ()),
            tuple(ErrorFrame.from_json(f) for f in d.get("frames") or ()), _tuple(d.get("notes")),
        )


def apply_delta(table: Mapping[str, Any], names: Sequence[str], changed: Sequence[Any]) -> dict[str, Any]:
    """The tensor table after a report: its names in order, each with its changed description
    or else the one the table had. Used on both sides of the comm (descriptions are JSON
    dicts in the kernel, TensorInfo records in the front end; both have a name)."""
    by_name = {_name_of(t): t for t in changed}
    return {name: by_name.get(name) or table[name] for name in names}


def _name_of(description: Any) -> str:
    return str(description["name"] if isinstance(description, Mapping) else description.name)


GRAPH_REQUEST = "graph"


def graph_request(name: str) -> Json:
    """What the front end sends on the comm to ask for a tensor's graph."""
    return {"request": GRAPH_REQUEST, "name": name}


def graph_reply(graph: Graph) -> Json:
    return {"reply": "graph", "graph": graph.to_json()}


def error_reply(error: str) -> Json:
    return {"reply": "error", "error": error}


def graph_from_reply(name: str, reply: Mapping[str, Any]) -> Graph:
    """The graph in a probe's answer, or a Graph saying why there is none."""
    if reply.get("reply") == "graph" and isinstance(reply.get("graph"), Mapping):
        return Graph.from_json(reply["graph"])
    return Graph.failed(name, str(reply.get("error") or "the kernel did not answer"))


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


__all__ = [
    "BACKWARD_LOG_ENV", "COMM_TARGET", "MEMORY_LIMIT_ENV", "ORIGIN_KEY", "PARENT_PID_ENV", "RUNTIME_DIR_PREFIX",
    "BackwardEvent", "CellReport", "ErrorFrame", "Explanation", "Graph", "GraphLeaf", "GraphNode", "JacobianView",
    "LeafChange", "LeafJacobian", "RootLabel", "SavedTensor", "Stats", "TensorInfo", "Values",
    "apply_delta", "error_reply", "graph_from_reply", "graph_reply", "graph_request", "size_text",
]
