"""The Jacobian of a backward call's root with respect to its leaves, for the
vector-Jacobian view: `leaf.grad` gains vᵀ·J, where v is the `gradient` argument.

Computed from the graph itself, before the call frees it, one row per element of the root:
each node's backward is called directly, as the engine would call it, but without the engine.
So no hook of the user's runs, no `.grad` is written (AccumulateGrad nodes are read, not
called) and nothing is freed. A graph holding a custom `autograd.Function` is left alone:
its backward is the user's code, and calling it could have effects. Only small cases are
computed; the rest get a note saying why not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradrepl.inkernel import walker
from gradrepl.inkernel.values import not_previewed
from gradrepl.protocol import JacobianView, LeafJacobian

MAX_ROOT = 64  # elements of the root: one pass through the graph each
MAX_ENTRIES = 4096  # elements of all Jacobians of one call together
MAX_NODES = 200  # graph nodes


class NotComputed(Exception):
    """Why the Jacobian is not shown; str() is a short phrase for the user."""


@dataclass(frozen=True)
class LeafMatrix:
    """J of the root with respect to one leaf: a row per root element, a column per leaf element."""

    leaf: str
    root_shape: tuple[int, ...]
    leaf_shape: tuple[int, ...]
    matrix: Any  # float64 tensor

    def rows(self) -> tuple[tuple[float, ...], ...]:
        return tuple(map(tuple, self.matrix.tolist()))


def _graph_in_order(torch: Any, root_fn: Any) -> list[Any]:
    """The graph's nodes, each after every node that passes it a gradient."""
    walked = walker.walk([root_fn], MAX_NODES)
    if walked.cut:
        raise NotComputed(f"the graph has more than {MAX_NODES} nodes")
    for node in walked.nodes:
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            raise NotComputed(f"the graph holds a custom autograd.Function ({type(node).__name__}), whose backward is not run twice")
    return walker.topological(walked, [root_fn])


def _row(order: list[Any], root: Any, seed: Any, leaf_ids: set[int]) -> dict[int, Any]:
    """The gradient each leaf receives when `seed` is passed back from `root`."""
    buffers: dict[int, list[Any]] = {id(root.grad_fn): [None] * len(root.grad_fn._input_metadata)}
    buffers[id(root.grad_fn)][root.output_nr] = seed
    received: dict[int, Any] = {}
    for node in order:
        variable = walker.accumulated_leaf(node)
        inputs = buffers.pop(id(node), None)
        if variable is not None:
            if inputs is not None and inputs[0] is not None and id(variable) in leaf_ids:
                received[id(variable)] = inputs[0]
            continue
        if inputs is None or all(g is None for g in inputs):
            continue
        outputs = node(*inputs)
        if not isinstance(outputs, tuple):
            outputs = (outputs,)
        for (child, input_nr), grad in zip(node.next_functions, outputs, strict=False):
            if child is None or grad is None:
                continue
            slots = buffers.setdefault(id(child), [None] * max(len(child._input_metadata), input_nr + 1))
            slots[input_nr] = grad if slots[input_nr] is None else slots[input_nr] + grad
    return received


def jacobians(torch: Any, root: Any, leaves: list[tuple[str, Any]]) -> list[LeafMatrix]:
    """For each leaf, J with one row per element of `root` and one column per element of
    the leaf (both flattened). Raises NotComputed."""
    if root.grad_fn is None:
        raise NotComputed("the root has no grad_fn")
    rows = root.numel()
    if rows > MAX_ROOT:
        raise NotComputed(f"the root has {rows} elements (the view computes up to {MAX_ROOT})")
    entries = rows * sum(leaf.numel() for _, leaf in leaves)
    if entries > MAX_ENTRIES:
        raise NotComputed(f"the Jacobians would have {entries:,} entries (the view computes up to {MAX_ENTRIES:,})")
    if any(root.dtype.is_complex or leaf.dtype.is_complex for _, leaf in leaves):
        raise NotComputed("complex tensors")
    order = _graph_in_order(torch, root.grad_fn)
    leaf_ids = {id(leaf) for _, leaf in leaves}
    matrices = {id(leaf): torch.zeros(rows, leaf.numel(), dtype=torch.float64) for _, leaf in leaves}
    for index in range(rows):
        seed = torch.zeros(rows, dtype=root.dtype).reshape(root.shape)
        seed.view(-1)[index] = 1
        for key, grad in _row(order, root, seed, leaf_ids).items():
            matrices[key][index] = grad.detach().reshape(-1).to(torch.float64)
    root_shape = tuple(int(s) for s in root.shape)
    return [LeafMatrix(name, root_shape, tuple(int(s) for s in leaf.shape), matrices[id(leaf)]) for name, leaf in leaves]


class VjpView:
    """The vector-Jacobian view of one backward call, begun before the call (J, v, vᵀ·J)
    and finished after it (what the call actually wrote, and whether it equals vᵀ·J)."""

    def __init__(self, root: str | None, note: str | None = None, v: tuple[float, ...] = (),
                 leaves: list[tuple[LeafJacobian, Any, Any, Any]] | None = None) -> None:
        self.root = root
        self.note = note
        self.v = v
        # (J and vᵀ·J as a record, the leaf, its .grad before the call (a copy) or None, vᵀ·J as a tensor)
        self._leaves = leaves or []

    @classmethod
    def begin(cls, torch: Any, root: Any, root_name: str, v: Any, leaves: list[tuple[str, Any]]) -> VjpView | None:
        """None when there is nothing to show: a scalar root, or no v."""
        if v is None or not isinstance(v, torch.Tensor) or root.numel() <= 1 or not leaves:
            return None
        if any(not_previewed(torch, t) is not None for t in (root, v, *(leaf for _, leaf in leaves))):
            return cls(root_name, "not computed for a sparse or nested tensor")
        try:
            matrices = jacobians(torch, root, leaves)
        except NotComputed as why:
            return cls(root_name, str(why))
        except Exception as exc:  # a backward formula that needs what a direct call lacks
            return cls(root_name, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200])
        flat_v = v.detach().reshape(1, -1).to(torch.float64)
        kept = []
        for entry, (_, leaf) in zip(matrices, leaves, strict=True):
            vjp = (flat_v @ entry.matrix).reshape(-1)
            record = LeafJacobian(entry.leaf, entry.root_shape, entry.leaf_shape, entry.rows(), tuple(vjp.tolist()))
            grad = leaf.grad
            kept.append((record, leaf, None if grad is None else grad.detach().clone(), vjp))
        return cls(root_name, None, tuple(flat_v.reshape(-1).tolist()), kept)

    @classmethod
    def noted(cls, note: str) -> VjpView:
        """A view that only says why there is no J."""
        return cls(None, note)

    def finish(self, torch: Any, returned: list[Any] | None = None) -> None:
        """Compare vᵀ·J with what the call added to each leaf's .grad (or, for
        autograd.grad, with what it returned)."""
        finished = []
        for index, (record, leaf, before, vjp) in enumerate(self._leaves):
            if returned is not None:
                got = returned[index] if index < len(returned) else None
            else:
                after = leaf.grad
                got = None if after is None else (after.detach() if before is None else after.detach() - before)
            if got is not None:
                change = got.reshape(-1).to(torch.float64)
                matches = bool(change.shape == vjp.shape and torch.allclose(change, vjp, rtol=1e-4, atol=1e-6))
                record = LeafJacobian(record.leaf, record.root_shape, record.leaf_shape, record.matrix, record.vjp,
                                      tuple(change.tolist()), matches)
            finished.append((record, leaf, before, vjp))
        self._leaves = finished

    def record(self) -> JacobianView:
        return JacobianView(self.root, self.v, tuple(record for record, _, _, _ in self._leaves), self.note)
