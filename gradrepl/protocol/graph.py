"""An autograd graph as the probe walked it, and the comm request and reply that carry it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gradrepl.protocol.json_forms import Json, optional
from gradrepl.protocol.node_grads import GradPreview

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
class GraphRepeat:
    """A run of `count` alike iterations along a chain, which stands in the graph as one node.

    An iteration is `period` nodes of the chain, each passing its gradient to the next, with
    whatever is drawn under them; `nodes` counts the graph nodes of all the iterations. Of
    those, the nodes of the first and the last iteration are described (`first`, `last`: their
    numbers, in the order they are drawn); the ones between are counted, not sent."""

    count: int
    period: int
    nodes: int
    first: tuple[int, ...] = ()
    last: tuple[int, ...] = ()

    @property
    def hidden(self) -> int:
        """Graph nodes of the run that are not described (the iterations between the first and last)."""
        return max(self.nodes - len(self.first) - len(self.last), 0)

    def to_json(self) -> Json:
        return {"count": self.count, "period": self.period, "nodes": self.nodes,
                "first": list(self.first), "last": list(self.last)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GraphRepeat:
        return cls(int(d.get("count") or 0), int(d.get("period") or 0), int(d.get("nodes") or 0),
                   tuple(int(n) for n in d.get("first") or ()), tuple(int(n) for n in d.get("last") or ()))


def _previews(items: Any) -> tuple[GradPreview | None, ...] | None:
    return None if items is None else tuple(optional(GradPreview, item) for item in items)


@dataclass(frozen=True)
class GraphNode:
    name: str  # MulBackward0; for a run (`repeat`), its iteration's chain: "AddBackward0 → MulBackward0"
    tensor: str | None = None  # the user's name for the tensor this node produced
    leaf: GraphLeaf | None = None  # for AccumulateGrad: the leaf it accumulates into
    saved: tuple[SavedTensor, ...] = ()
    values: tuple[tuple[str, str], ...] = ()  # other saved values: ("exponent", "2")
    next: tuple[int, ...] = ()  # numbers of the nodes it passes gradients to; -1: not described
    no_grad_inputs: int = 0
    note: str | None = None
    repeat: GraphRepeat | None = None  # this node is a run of alike iterations, not one of torch's nodes
    # What the last traced backward call through this node gave it and it passed on (--node-grads).
    grad_outputs: tuple[GradPreview | None, ...] | None = None
    grad_inputs: tuple[GradPreview | None, ...] | None = None

    def to_json(self) -> Json:
        data: Json = {"name": self.name, "tensor": self.tensor, "saved": [s.to_json() for s in self.saved],
                      "values": dict(self.values), "next": list(self.next), "no_grad_inputs": self.no_grad_inputs}
        if self.leaf is not None:
            data["leaf"] = self.leaf.to_json()
        if self.note is not None:
            data["note"] = self.note
        if self.repeat is not None:
            data["repeat"] = self.repeat.to_json()
        if self.grad_outputs is not None:
            data["grad_outputs"] = [None if g is None else g.to_json() for g in self.grad_outputs]
            data["grad_inputs"] = [None if g is None else g.to_json() for g in self.grad_inputs or ()]
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GraphNode:
        return cls(str(d.get("name")), d.get("tensor"), optional(GraphLeaf, d.get("leaf")),
                   tuple(SavedTensor.from_json(s) for s in d.get("saved") or ()),
                   tuple((str(k), str(v)) for k, v in (d.get("values") or {}).items()),
                   tuple(int(n) for n in d.get("next") or ()), int(d.get("no_grad_inputs") or 0), d.get("note"),
                   optional(GraphRepeat, d.get("repeat")), _previews(d.get("grad_outputs")),
                   _previews(d.get("grad_inputs")))


@dataclass(frozen=True)
class Graph:
    """The autograd graph behind a named tensor: its nodes in the order they are drawn (see
    graph_layout), a run of alike iterations folded into one node (`GraphNode.repeat`). For a
    leaf, `used_by` names the tensors whose graphs reach it."""

    root: str
    shape: tuple[int, ...] = ()
    dtype: str = ""
    requires_grad: bool = False
    is_leaf: bool = True
    nodes: tuple[GraphNode, ...] = ()
    total: int = 0  # nodes counted (a lower bound when walk_cut)
    walk_cut: bool = False
    error: str | None = None  # why there is no graph to show
    used_by: tuple[str, ...] | None = None  # for a leaf that requires grad: the named tensors whose graphs reach it

    @property
    def described(self) -> int:
        return len(self.nodes)

    def to_json(self) -> Json:
        if self.error is not None:
            return {"root": self.root, "error": self.error}
        data: Json = {"root": self.root, "shape": list(self.shape), "dtype": self.dtype,
                      "requires_grad": self.requires_grad, "is_leaf": self.is_leaf,
                      "nodes": [n.to_json() for n in self.nodes], "total": self.total,
                      "described": self.described, "walk_cut": self.walk_cut}
        if self.used_by is not None:
            data["used_by"] = list(self.used_by)
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Graph:
        used_by = d.get("used_by")
        return cls(str(d.get("root")), tuple(d.get("shape") or ()), str(d.get("dtype") or ""),
                   bool(d.get("requires_grad")), bool(d.get("is_leaf", True)),
                   tuple(GraphNode.from_json(n) for n in d.get("nodes") or ()), int(d.get("total") or 0),
                   bool(d.get("walk_cut")), d.get("error"),
                   None if used_by is None else tuple(str(name) for name in used_by))

    @classmethod
    def failed(cls, root: str, error: str) -> Graph:
        return cls(root, error=error)


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
