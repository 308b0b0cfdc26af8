"""One backward() or autograd.grad() call as the tracer saw it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gradrepl.protocol.json_forms import Json, as_tuple, nested_list, nested_tuple, optional
from gradrepl.protocol.node_grads import NodeGrads
from gradrepl.protocol.tensors import Values

BackwardKind = Literal["backward", "grad"]
NodeOrder = Literal["exact", "predicted"]  # recorded as the engine ran them, or the engine's rule replayed
# What happened to a .grad between the last traced call that saw it and the next one:
# cleared (set to None: opt.zero_grad(), x.grad = None), zeroed in place (x.grad.zero_()),
# replaced by another tensor (x.grad = t), or changed in place otherwise (clipped, scaled).
ResetKind = Literal["cleared", "zeroed", "replaced", "changed"]
RESET_KINDS: tuple[ResetKind, ...] = ("cleared", "zeroed", "replaced", "changed")
Norm = float | str | None  # a grad's 2-norm; "nan" or "inf" where it is not finite; None: not known


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
    norm: Norm = None  # of the grad after the call
    retained: bool = False  # the grad of a non-leaf kept by retain_grad()

    def to_json(self) -> Json:
        data: Json = {"name": self.name, "before": None if self.before is None else self.before.to_json(),
                      "after": None if self.after is None else self.after.to_json(), "accumulated": self.accumulated,
                      "norm": self.norm}
        if self.retained:
            data["retained"] = True
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LeafChange:
        return cls(str(d.get("name")), optional(Values, d.get("before")), optional(Values, d.get("after")),
                   bool(d.get("accumulated")), d.get("norm"), bool(d.get("retained")))


@dataclass(frozen=True)
class GradReset:
    """A .grad a call wrote that had changed since the last traced call (or the cell's start)."""

    name: str
    kind: ResetKind

    def to_json(self) -> Json:
        return {"name": self.name, "kind": self.kind}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GradReset:
        kind = d.get("kind")
        return cls(str(d.get("name")), kind if kind in RESET_KINDS else "changed")


@dataclass(frozen=True)
class HookEffect:
    """What the tensor hooks (`t.register_hook`) of one tensor did to its grad in a call."""

    name: str
    norm_in: Norm  # the grad the first hook was given
    norm_out: Norm  # the grad the last one passed on
    changed: bool

    def to_json(self) -> Json:
        return {"name": self.name, "norm_in": self.norm_in, "norm_out": self.norm_out, "changed": self.changed}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> HookEffect:
        return cls(str(d.get("name")), d.get("norm_in"), d.get("norm_out"), bool(d.get("changed")))


@dataclass(frozen=True)
class CallRun:
    """Consecutive calls of one group that were counted, not described one by one (a cell's
    calls past the first and before the last described ones)."""

    group: int  # 0: calls of several groups (past the runs counted one by one)
    first_step: int
    count: int
    root: str = ""  # the root as written or named, as in the group's calls ("" for several)
    norms: tuple[Norm, ...] = ()  # the grad norm of the calls, `bucket` calls a value (their largest)
    bucket: int = 1
    resets: int = 0  # calls whose grads had been reset (cleared, zeroed, ...) since the call before
    failed: int = 0

    @property
    def last_step(self) -> int:
        return self.first_step + self.count - 1

    def to_json(self) -> Json:
        return {"group": self.group, "first_step": self.first_step, "count": self.count, "root": self.root,
                "norms": list(self.norms), "bucket": self.bucket, "resets": self.resets, "failed": self.failed}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CallRun:
        return cls(int(d.get("group") or 0), int(d.get("first_step") or 0), int(d.get("count") or 0),
                   str(d.get("root") or ""), as_tuple(d.get("norms")), int(d.get("bucket") or 1),
                   int(d.get("resets") or 0), int(d.get("failed") or 0))


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
    step: int = 0  # the call's number in its cell, from 1 (0: not known)
    group: int = 0  # consecutive calls alike (root expression, graph, arguments) share it
    expression: str | None = None  # the root as the calling line wrote it: `loss` in loss.backward()
    norm: Norm = None  # of the grads written (or returned) together
    brief: bool = False  # described in brief: no node hooks (the order predicted), no values before
    resets: tuple[GradReset, ...] = ()
    hooks: tuple[HookEffect, ...] = ()
    skipped_before: tuple[CallRun, ...] = ()  # the calls between the previous described one and this
    # What each node the engine ran received and passed on, in engine order (--node-grads);
    # None: not recorded, `node_grads_note` says why.
    node_grads: tuple[NodeGrads, ...] | None = None
    node_grads_note: str | None = None

    @property
    def root_text(self) -> str:
        """The root as the reader knows it: as written, else its name, else what it is."""
        if self.expression:
            return self.expression
        return ", ".join(r.name or f"<{r.description}>" for r in self.roots) or "?"

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
        data.update({"step": self.step, "group": self.group, "expression": self.expression, "norm": self.norm})
        if self.brief:
            data["brief"] = True
        if self.resets:
            data["resets"] = [reset.to_json() for reset in self.resets]
        if self.hooks:
            data["hooks"] = [hook.to_json() for hook in self.hooks]
        if self.skipped_before:
            data["skipped_before"] = [run.to_json() for run in self.skipped_before]
        data["node_grads"] = None if self.node_grads is None else [node.to_json() for node in self.node_grads]
        if self.node_grads_note is not None:
            data["node_grads_note"] = self.node_grads_note
        return data

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BackwardEvent:
        def values(items: Sequence[Any] | None) -> tuple[Values | None, ...] | None:
            return None if items is None else tuple(optional(Values, v) for v in items)

        inputs = d.get("inputs")
        node_grads = d.get("node_grads")
        return cls(
            kind="grad" if d.get("kind") == "grad" else "backward", cell=d.get("cell"),
            roots=tuple(RootLabel.from_json(r) for r in d.get("roots") or ()), gradient=values(d.get("gradient")),
            retain_graph=d.get("retain_graph"), create_graph=bool(d.get("create_graph")),
            inputs=None if inputs is None else tuple(str(i) for i in inputs), nodes=as_tuple(d.get("nodes")),
            nodes_total=int(d.get("nodes_total") or len(d.get("nodes") or ())),
            node_order="predicted" if d.get("node_order") == "predicted" else "exact",
            leaves=tuple(LeafChange.from_json(x) for x in d.get("leaves") or ()), grads=values(d.get("grads")),
            error=d.get("error"), jacobian=optional(JacobianView, d.get("jacobian")), notes=as_tuple(d.get("notes")),
            walk_cut=bool(d.get("walk_cut")), step=int(d.get("step") or 0), group=int(d.get("group") or 0),
            expression=d.get("expression"), norm=d.get("norm"), brief=bool(d.get("brief")),
            resets=tuple(GradReset.from_json(x) for x in d.get("resets") or ()),
            hooks=tuple(HookEffect.from_json(x) for x in d.get("hooks") or ()),
            skipped_before=tuple(CallRun.from_json(x) for x in d.get("skipped_before") or ()),
            node_grads=None if node_grads is None else tuple(NodeGrads.from_json(x) for x in node_grads),
            node_grads_note=d.get("node_grads_note"),
        )
