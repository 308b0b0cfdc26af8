"""One backward call while the tracer holds it: its tensors still captures (copies taken on the
hot path), turned into a protocol record once the cell has run (`TracedCall.record`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gradrepl.inkernel.jacobian import VjpView
from gradrepl.protocol import BackwardEvent, BackwardKind, LeafChange, NodeOrder, RootLabel, Values
from gradrepl.protocol.backward import CallRun, GradReset, HookEffect, Norm
from gradrepl.protocol.node_grads import NodeGrads


class TracedRoot(NamedTuple):
    name: str | None
    description: str
    grad_fn: str | None
    shape: tuple[int | None, ...]
    value: Any  # a capture


class TracedLeafChange(NamedTuple):
    name: str
    before: Any  # captures
    after: Any
    accumulated: bool
    norm: Norm = None
    retained: bool = False


@dataclass
class TracedCall:
    """One backward call while it is traced."""

    kind: BackwardKind
    cell: int | None
    step: int = 0
    brief: bool = False
    expression: str | None = None
    roots: list[TracedRoot] = field(default_factory=list)
    gradient: list[Any] | None = None
    retain_graph: bool | None = None
    create_graph: bool = False
    inputs: list[str] | None = None
    nodes: list[str] = field(default_factory=list)
    nodes_total: int = 0
    node_order: NodeOrder = "predicted"
    walk_cut: bool = False
    graph: int = 0  # calls whose graphs have the same nodes share it (within a cell)
    leaves: list[TracedLeafChange] = field(default_factory=list)
    grads: list[Any] | None = None
    norm: Norm = None
    resets: list[GradReset] = field(default_factory=list)
    hooks: list[HookEffect] = field(default_factory=list)
    error: str | None = None
    vjp: VjpView | None = None
    notes: list[str] = field(default_factory=list)
    group: int = 0
    writes: Any = None  # a brief call's BriefWrites: named (into leaves, resets) only if the call is kept
    node_grads: tuple[NodeGrads, ...] | None = None
    node_grads_note: str | None = None

    def was_reset(self) -> bool:
        return bool(self.resets or (self.writes is not None and self.writes.resets))

    def root_text(self) -> str:
        return self.expression or ", ".join(r.name or r.description for r in self.roots)

    def likeness(self) -> tuple[Any, ...]:
        """What consecutive calls must share to be one group: the root as written, the graph, the arguments."""
        return (self.kind, self.root_text(), self.graph, self.gradient is not None, self.retain_graph, self.create_graph,
                None if self.inputs is None else tuple(self.inputs), self.error is not None)

    def record(self, values: Callable[[Any], Values | None], cell: int | None,
               skipped_before: tuple[CallRun, ...] = ()) -> BackwardEvent:
        def all_values(captures: list[Any] | None) -> tuple[Values | None, ...] | None:
            return None if captures is None else tuple([values(c) for c in captures])

        return BackwardEvent(
            kind=self.kind, cell=cell,
            roots=tuple([RootLabel(r.name, r.description, r.grad_fn, r.shape, values(r.value)) for r in self.roots]),
            gradient=all_values(self.gradient), retain_graph=self.retain_graph, create_graph=self.create_graph,
            inputs=None if self.inputs is None else tuple(self.inputs),
            nodes=tuple(self.nodes), nodes_total=self.nodes_total, node_order=self.node_order,
            leaves=tuple([LeafChange(c.name, values(c.before), values(c.after), c.accumulated, c.norm, c.retained)
                          for c in self.leaves]),
            grads=all_values(self.grads), error=self.error,
            jacobian=None if self.vjp is None else self.vjp.record(), notes=tuple(self.notes), walk_cut=self.walk_cut,
            step=self.step, group=self.group, expression=self.expression, norm=self.norm, brief=self.brief,
            resets=tuple(self.resets), hooks=tuple(self.hooks), skipped_before=skipped_before,
            node_grads=self.node_grads, node_grads_note=self.node_grads_note,
        )
