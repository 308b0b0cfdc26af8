"""A backward call described in brief: what a training loop's calls past the cell's first
DESCRIBED_IN_FULL get, cheap enough for each of them. It walks the graph (the shape of its
nodes, the leaves it may write), notes each leaf's grad key before and after, and takes the
norms of the grads written: no node hooks (the order is predicted, once per graph shape), no
namespace read (names come from the calls described in full, and are looked up only for the
calls kept), no copies of values but those the first and the last call of a group left,
copied when they are still there (`keep_values`). Never imports torch.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from gradrepl.inkernel import walker
from gradrepl.inkernel.call_parts import KnownNames, as_list, describe_unnamed, start_node
from gradrepl.inkernel.grad_watch import GradMemory, NormBudget, grad_key, norms_of, total_norm
from gradrepl.inkernel.traced_call import TracedCall, TracedLeafChange, TracedRoot
from gradrepl.protocol.backward import GradReset, ResetKind

NORMS_EVERY_CALL = 128  # brief calls up to this step get their norms taken; later ones, some of them


def norm_taken(step: int) -> bool:
    """Whether a brief call's grad norms are taken: each call's up to step 128, then every
    2nd call's up to 256, every 4th up to 512, ...: about 64 calls in each doubling, enough for
    a trajectory, at a fraction of the cost (a norm is the dearest part of a brief call)."""
    stride = 1 << max(0, (step // NORMS_EVERY_CALL).bit_length())
    return step % stride == 0


class BriefWrites:
    """What a brief call wrote, its tensors still objects: named only if the call is kept."""

    __slots__ = ("after", "resets", "written")

    def __init__(self, written: list[tuple[Any, bool, Any]], resets: list[tuple[Any, ResetKind]]) -> None:
        self.written = written  # (tensor, accumulated, norm)
        self.resets = resets
        self.after: dict[int, Any] = {}  # position in `written` -> a capture of the values it left

    def named(self, call: TracedCall, name: Callable[[Any], str]) -> None:
        """Into the call's leaves and resets, by name."""
        call.leaves = [TracedLeafChange(name(t), None, self.after.get(at), accumulated, norm)
                       for at, (t, accumulated, norm) in enumerate(self.written)]
        call.resets = [GradReset(name(t), kind) for t, kind in self.resets]


class BriefCalls:
    """Describes calls in brief for one tracer."""

    def __init__(self, memory: GradMemory, known: KnownNames, budget: NormBudget, capture: Callable[[Any, Any], Any],
                 graph_number: Callable[[Any], int], predicted: Callable[[walker.Walk, list[Any], int], list[str]],
                 names: Callable[[Any], Any]) -> None:
        self._names = names  # torch -> (name, tensor) for every tensor the user named
        self._scanned = False  # the namespace read this cell
        self._memory = memory
        self._budget = budget
        self._known = known
        self._capture = capture
        self._graph_number = graph_number
        self._predicted_order = predicted
        self._orders: dict[int, list[str]] = {}  # graph number -> its predicted order
        # The last call's writes, and each grad it wrote (weakly: the values are wanted only while
        # the grad holds them) with its key.
        self._last: tuple[BriefWrites, list[tuple[Any, Any]]] | None = None

    def start_cell(self) -> None:
        self._orders.clear()
        self._last = None
        self._scanned = False

    def name_of(self, torch: Any, tensor: Any) -> str:
        return self._named(torch, tensor) or describe_unnamed(tensor)

    def _named(self, torch: Any, tensor: Any) -> str | None:
        """The tensor's name: the namespace is read once a cell, when a brief call first needs
        a name (for the calls kept, when the cell ends; for inputs= and unwritten roots, then),
        and again for a tensor not seen in it."""
        name = self._known.name_of(tensor)
        if name is None and not self._scanned:
            self._scanned = True
            for found, named in self._names(torch):
                if self._known.name_of(named) is None:
                    self._known.note(named, found)
            name = self._known.name_of(tensor)
        return name

    def before(self, torch: Any, call: TracedCall, arguments: dict[str, Any], max_walk: int,
               ) -> tuple[walker.Walk, list[Any], list[Any], list[Any], list[tuple[Any, ResetKind]]]:
        """The call's roots and arguments; its graph's walk and starts; the leaves it may write,
        their grad keys now, and those reset since the last call saw them."""
        kind = call.kind
        roots = as_list(arguments.get("tensors" if kind == "backward" else "outputs"))
        if call.expression is None or len(roots) != 1:
            call.roots = [TracedRoot(self._named(torch, t), describe_unnamed(t), None, (), None) for t in roots]
        gradients = arguments.get("grad_tensors" if kind == "backward" else "grad_outputs")
        call.gradient = None if gradients is None else [None] * len(as_list(gradients))
        retain_graph = arguments.get("retain_graph")
        call.retain_graph = None if retain_graph is None else bool(retain_graph)
        call.create_graph = bool(arguments.get("create_graph", False))
        inputs = arguments.get("inputs")
        if inputs is not None:
            call.inputs = [self.name_of(torch, t) for t in as_list(inputs)]
        starts = [start_node(torch, t) for t in roots]
        walked = walker.walk(starts, max_walk)
        call.graph = self._graph_number((tuple(map(type, walked.nodes)), walked.cut))
        if kind != "backward":
            return walked, starts, [], [], []
        leaves = walked.leaves() if inputs is None else [t for t in as_list(inputs) if getattr(t, "is_leaf", False)]
        keys, resets = self._memory.before_call(torch, leaves)
        return walked, starts, leaves, keys, resets

    def after(self, torch: Any, call: TracedCall, walked: walker.Walk | None, starts: list[Any],
              leaves: list[Any], keys: list[Any], resets: list[tuple[Any, ResetKind]], result: Any,
              max_nodes: int, first_of_group: bool) -> None:
        """What the call wrote: its grads' keys, their norms (on the calls `norm_taken` picks),
        their values too when it starts a group."""
        if walked is not None:
            call.nodes_total, call.walk_cut = len(walked), walked.cut
            if not call.error:
                order = self._orders.get(call.graph)
                if order is None:
                    order = self._orders[call.graph] = self._predicted_order(walked, starts, max_nodes)
                call.nodes = order
        written = self._memory.after_call(leaves, keys)
        grads = [grad for _, _, grad, _ in written if grad is not None]
        measured = (first_of_group or norm_taken(call.step)) and self._budget.allows(grads)
        norms = iter(norms_of(torch, grads) if measured else [])
        writes = BriefWrites([(t, old is not None, None if grad is None else next(norms, None))
                              for t, old, grad, _ in written], resets)
        call.writes = writes
        call.norm = total_norm(norm for _, _, norm in writes.written)
        if result is not None:
            returned = as_list(result)
            call.grads = [None] * len(returned)
            present = [g for g in returned if g is not None]
            if (first_of_group or norm_taken(call.step)) and self._budget.allows(present):
                call.norm = total_norm(norms_of(torch, present))
        self._last = (writes, [(None if grad is None else weakref.ref(grad), key) for _, _, grad, key in written])
        if first_of_group:
            self.keep_values(torch)

    def keep_values(self, torch: Any) -> None:
        """Copies the values the last brief call wrote into grads that still hold them: called
        when it starts a group, when the next call is of another group, and at the cell's end."""
        last, self._last = self._last, None
        if last is None:
            return
        writes, grads = last
        for at, ((tensor, _, _), (grad, key)) in enumerate(zip(writes.written, grads, strict=True)):
            now = tensor.grad
            if now is not None and grad is not None and grad() is now and grad_key(now) == key:
                writes.after[at] = self._capture(torch, now)
