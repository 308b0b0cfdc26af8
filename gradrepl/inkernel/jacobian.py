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

from typing import Any

MAX_ROOT = 64  # elements of the root: one pass through the graph each
MAX_ENTRIES = 4096  # elements of all Jacobians of one call together
MAX_NODES = 200  # graph nodes


class NotComputed(Exception):
    """Why the Jacobian is not shown; str() is a short phrase for the user."""


def _topological(torch: Any, root_fn: Any) -> list[Any]:
    """The graph's nodes, each after every node that passes it a gradient."""
    consumers: dict[int, int] = {}
    seen: dict[int, Any] = {}
    stack = [root_fn]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        if len(seen) >= MAX_NODES:
            raise NotComputed(f"the graph has more than {MAX_NODES} nodes")
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            raise NotComputed(f"the graph holds a custom autograd.Function ({type(node).__name__}), whose backward is not run twice")
        seen[id(node)] = node
        for child, _ in node.next_functions:
            if child is not None:
                consumers[id(child)] = consumers.get(id(child), 0) + 1
                stack.append(child)
    order, ready = [], [root_fn]
    while ready:
        node = ready.pop()
        order.append(node)
        for child, _ in node.next_functions:
            if child is None:
                continue
            consumers[id(child)] -= 1
            if consumers[id(child)] == 0:
                ready.append(child)
    return order


def _row(torch: Any, order: list[Any], root: Any, seed: Any, leaf_ids: set[int]) -> dict[int, Any]:
    """The gradient each leaf receives when `seed` is passed back from `root`."""
    buffers: dict[int, list[Any]] = {id(root.grad_fn): [None] * len(root.grad_fn._input_metadata)}
    buffers[id(root.grad_fn)][root.output_nr] = seed
    received: dict[int, Any] = {}
    for node in order:
        variable = getattr(node, "variable", None)
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
        for (child, input_nr), grad in zip(node.next_functions, outputs):
            if child is None or grad is None:
                continue
            slots = buffers.setdefault(id(child), [None] * max(len(child._input_metadata), input_nr + 1))
            slots[input_nr] = grad if slots[input_nr] is None else slots[input_nr] + grad
    return received


def jacobians(torch: Any, root: Any, leaves: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """For each leaf, J with one row per element of `root` and one column per element of
    the leaf (both flattened), as nested lists. Raises NotComputed."""
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
    order = _topological(torch, root.grad_fn)
    leaf_ids = {id(leaf) for _, leaf in leaves}
    matrices = {id(leaf): torch.zeros(rows, leaf.numel(), dtype=torch.float64) for _, leaf in leaves}
    for index in range(rows):
        seed = torch.zeros(rows, dtype=root.dtype).reshape(root.shape)
        seed.view(-1)[index] = 1
        for key, grad in _row(torch, order, root, seed, leaf_ids).items():
            matrices[key][index] = grad.detach().reshape(-1).to(torch.float64)
    return [
        {
            "leaf": name,
            "root_shape": [int(s) for s in root.shape],
            "leaf_shape": [int(s) for s in leaf.shape],
            "matrix": matrices[id(leaf)].tolist(),
        }
        for name, leaf in leaves
    ]


def vector_jacobian(torch: Any, v: Any, matrix: list[list[float]]) -> list[float]:
    """vᵀ·J for v as the root's shape (flattened) and J as jacobians() gives it."""
    return (v.detach().reshape(1, -1).to(torch.float64) @ torch.tensor(matrix, dtype=torch.float64)).reshape(-1).tolist()


class VjpView:
    """The vector-Jacobian view of one backward call, begun before the call (J, v, vᵀ·J)
    and finished after it (what the call actually wrote, and whether it equals vᵀ·J)."""

    def __init__(self, data: dict[str, Any], leaves: list[tuple[Any, Any, Any]]) -> None:
        self.data = data  # the event's "jacobian" entry
        self._leaves = leaves  # (leaf, its .grad before the call (a copy) or None, vᵀ·J as a tensor)

    @classmethod
    def begin(cls, torch: Any, root: Any, root_name: str, v: Any, leaves: list[tuple[str, Any]]) -> VjpView | None:
        """None when there is nothing to show: a scalar root, or no v."""
        if v is None or not isinstance(v, torch.Tensor) or root.numel() <= 1 or not leaves:
            return None
        data: dict[str, Any] = {"root": root_name}
        try:
            matrices = jacobians(torch, root, leaves)
        except NotComputed as why:
            return cls({**data, "note": str(why)}, [])
        except Exception as exc:  # a backward formula that needs what a direct call lacks
            return cls({**data, "note": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]}, [])
        flat_v = v.detach().reshape(-1).to(torch.float64)
        data["v"] = flat_v.tolist()
        kept = []
        for entry, (_, leaf) in zip(matrices, leaves):
            vjp = vector_jacobian(torch, v, entry["matrix"])
            entry["vjp"] = vjp
            grad = leaf.grad
            kept.append((leaf, None if grad is None else grad.detach().clone(), torch.tensor(vjp, dtype=torch.float64)))
        data["leaves"] = matrices
        return cls(data, kept)

    def finish(self, torch: Any, returned: list[Any] | None = None) -> None:
        """Compare vᵀ·J with what the call added to each leaf's .grad (or, for
        autograd.grad, with what it returned)."""
        for index, (entry, (leaf, before, vjp)) in enumerate(zip(self.data.get("leaves") or [], self._leaves)):
            if returned is not None:
                got = returned[index] if index < len(returned) else None
            else:
                after = leaf.grad
                got = None if after is None else (after.detach() if before is None else after.detach() - before)
            if got is None:
                entry["grad_change"], entry["matches"] = None, None
                continue
            change = got.reshape(-1).to(torch.float64)
            entry["grad_change"] = change.tolist()
            entry["matches"] = bool(change.shape == vjp.shape and torch.allclose(change, vjp, rtol=1e-4, atol=1e-6))
