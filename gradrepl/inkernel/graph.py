"""A tensor's autograd graph as a `protocol.Graph`, read inside the kernel from its `grad_fn`.

Every node the walk reaches (`walker.walk`, up to MAX_GRAPH_WALK) is described; then runs of
alike iterations are folded into one node each and the nodes are numbered in the order the
drawing shows them (repeats.fold_repeats, on protocol.graph_layout's chains); a node met again
is referred to by its number, so a DAG stays linear in size. What is sent is bounded
(MAX_GRAPH_NODES, every leaf kept besides). Each node lists the tensors its backward saved:
their shapes, the user's name for them, and whether they were modified in place since they
were saved (the version check that fails at backward) or freed by an earlier backward. For a
leaf, the graph says which named tensors' graphs reach it.

Like the probe, this never imports torch itself and never raises.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from gradrepl.inkernel import walker
from gradrepl.inkernel.repeats import bound, fold_repeats
from gradrepl.protocol import Graph, GraphLeaf, GraphNode, NodeGrads, SavedTensor

MAX_GRAPH_NODES = 300  # nodes sent once runs are folded, leaves besides; the rest are counted
MAX_GRAPH_WALK = 100_000  # nodes walked and described (for a 20,000-node graph, about 0.2 s)
MAX_LEAF_SEARCH = 2_000_000  # nodes looked at past a cut walk, for its leaves
MAX_USERS = 200  # names of the tensors whose graphs use a leaf
MAX_SAVED_VALUE = 40  # characters of a saved non-tensor value (an exponent, a dim)

_SHAPE_SUFFIXES = ("_sym_sizes", "_sym_strides", "_sym_numel", "_sym_storage_offset", "_sizes", "_strides")
_VERSIONS = re.compile(r"is at version (\d+); expected version (\d+)")


def tensor_key(t: Any) -> tuple[Any, ...]:
    """Tells a tensor apart by the memory it views, so a saved copy of a named tensor finds its name."""
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), str(t.dtype))


class TensorNames:
    """The user's name of a tensor, by object or by the memory it views."""

    def __init__(self, named: Iterable[tuple[str, Any]]) -> None:
        self.by_id: dict[int, str] = {}
        self.by_key: dict[tuple[Any, ...], str] = {}
        self.by_grad_fn: dict[int, str] = {}
        for name, t in named:
            self.by_id.setdefault(id(t), name)
            try:
                self.by_key.setdefault(tensor_key(t), name)
            except Exception:
                pass
            grad_fn = getattr(t, "grad_fn", None)
            if grad_fn is not None:
                self.by_grad_fn.setdefault(id(grad_fn), name)

    def of(self, t: Any) -> str | None:
        name = self.by_id.get(id(t))
        if name is not None:
            return name
        try:
            return self.by_key.get(tensor_key(t))
        except Exception:
            return None


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(size) for size in t.shape)


def _dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


_SAVED_ATTRIBUTES: dict[type, tuple[tuple[str, str], ...]] = {}  # node type -> (attribute, saved name)


def saved_attributes(node: Any) -> tuple[tuple[str, str], ...]:
    """A node type's `_saved_*` properties (the same for every node of the type), sizes and strides left out."""
    kind = type(node)
    found = _SAVED_ATTRIBUTES.get(kind)
    if found is None:
        found = tuple((attr, attr.removeprefix("_saved_")) for attr in sorted(dir(node))
                      if attr.startswith("_saved_") and not attr.endswith(_SHAPE_SUFFIXES))
        if kind.__name__ != "CppFunction":  # one Python type for many C++ nodes: read each
            _SAVED_ATTRIBUTES[kind] = found
    return found


def _saved_entries(torch: Any, node: Any, names: TensorNames) -> tuple[list[SavedTensor], list[tuple[str, str]]]:
    """The tensors a node saved for its backward, and the other values it saved (an
    exponent, a dim), sizes and strides left out."""
    tensors: list[SavedTensor] = []
    values: list[tuple[str, str]] = []
    for attr, name in saved_attributes(node):
        try:
            value = getattr(node, attr)
        except Exception as exc:
            tensors.append(_unreadable(torch, node, attr, name, exc, names))
            continue
        if isinstance(value, torch.Tensor):
            tensors.append(SavedTensor(name, "ok", _shape(value), _dtype(value), names.of(value)))
        elif value is not None:
            text = repr(value) if isinstance(value, (int, float, bool, tuple, list, str)) else type(value).__name__
            values.append((name, text if len(text) <= MAX_SAVED_VALUE else text[: MAX_SAVED_VALUE - 1] + "…"))
    return tensors, values


def _unreadable(torch: Any, node: Any, attr: str, name: str, exc: Exception, names: TensorNames) -> SavedTensor:
    """A saved tensor whose read failed: modified in place since (the version check that fails
    at backward), freed by an earlier backward, or unreadable for another reason."""
    message = str(exc)
    raw = getattr(node, "_raw" + attr, None)
    data = getattr(raw, "data", None) if raw is not None else None
    shape, dtype, tensor = (_shape(data), _dtype(data), names.of(data)) if isinstance(data, torch.Tensor) else (None, None, None)
    versions = _VERSIONS.search(message)
    if versions is not None:
        return SavedTensor(name, "modified", shape, dtype, tensor, int(versions.group(1)), int(versions.group(2)))
    if "freed" in message or "second time" in message:
        return SavedTensor(name, "freed", shape, dtype, tensor)
    detail = f"{type(exc).__name__}: {message.splitlines()[0] if message else ''}"[:200]
    return SavedTensor(name, "unreadable", shape, dtype, tensor, detail=detail)


def _describe_node(torch: Any, node: Any, position: dict[int, int], names: TensorNames,
                   memory: Mapping[walker.NodeKey, NodeGrads]) -> GraphNode:
    edges = node.next_functions
    grads = memory.get(walker.node_key(node)) if memory else None
    variable = walker.accumulated_leaf(node)
    leaf = None
    if isinstance(variable, torch.Tensor):
        leaf = GraphLeaf(names.of(variable), _shape(variable), _dtype(variable))
    note = None
    try:
        saved, values = _saved_entries(torch, node, names)
    except Exception as exc:
        saved, values = [], []
        note = f"saved tensors not read: {type(exc).__name__}"
    return GraphNode(
        name=walker.node_name(node),
        tensor=names.by_grad_fn.get(id(node)),
        leaf=leaf,
        saved=tuple(saved),
        values=tuple(values),
        # Inputs that need no gradient (None in next_functions) are counted, not listed.
        next=tuple(position.get(id(child), -1) for child, _ in edges if child is not None),
        no_grad_inputs=sum(1 for child, _ in edges if child is None),
        note=note,
        grad_outputs=None if grads is None else grads.grad_outputs,
        grad_inputs=None if grads is None else grads.grad_inputs,
    )


def autograd_graph(torch: Any, root: Any, names: TensorNames,
                   memory: Mapping[walker.NodeKey, NodeGrads] | None = None) -> tuple[tuple[GraphNode, ...], int, bool]:
    """The graph behind `root.grad_fn`, runs folded and at most MAX_GRAPH_NODES nodes (and the
    leaves) in drawing order, each with the numbers of the nodes it passes gradients to; how
    many nodes were walked; whether the walk stopped at MAX_GRAPH_WALK (then it is a lower bound)."""
    with no_collections():
        walked = walker.walk([getattr(root, "grad_fn", None)], MAX_GRAPH_WALK)
        known = memory or {}
        described = [_describe_node(torch, node, walked.position, names, known) for node in walked.nodes]
        if walked.cut:  # the leaves past the walk, listed as reached through nodes not shown
            described.extend(_describe_node(torch, node, walked.position, names, known)
                             for node in walker.leaves_past(walked, MAX_LEAF_SEARCH))
        return bound(fold_repeats(described), MAX_GRAPH_NODES), len(walked), walked.cut


@contextmanager
def no_collections() -> Iterator[None]:
    """Python's cyclic garbage collector off while a graph is described: the records made for
    every node of a 20,000-node graph trigger full collections that take longer than the rest
    (they hold no cycles; they go when the description is done)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def leaf_users(named: list[tuple[str, Any]], leaf: Any, budget: int = MAX_LEAF_SEARCH) -> tuple[str, ...]:
    """The names of the tensors whose graphs reach `leaf`'s AccumulateGrad, in namespace order.
    One search over all their graphs, each node looked at once, at most `budget` of them."""
    reaches: dict[int, bool] = {}  # id(node) -> whether the leaf is reached from it
    keep_alive: list[Any] = []  # the ids above stay the nodes' while the search lives
    users: list[str] = []
    looked = 0
    for name, t in named:
        grad_fn = getattr(t, "grad_fn", None)
        if grad_fn is None or name in users:
            continue
        if id(grad_fn) not in reaches:
            looked = _search(grad_fn, leaf, reaches, keep_alive, looked, budget)
        if reaches.get(id(grad_fn)):
            users.append(name)
            if len(users) >= MAX_USERS:
                break
    return tuple(users)


def _search(start: Any, leaf: Any, reaches: dict[int, bool], keep_alive: list[Any], looked: int, budget: int) -> int:
    """Fills `reaches` for `start` and the nodes below it (post-order, no recursion)."""
    stack: list[tuple[Any, int]] = [(start, 0)]
    reaches[id(start)] = False
    keep_alive.append(start)
    while stack:
        node, index = stack[-1]
        inputs = node.next_functions
        if index == 0:
            looked += 1
            if walker.accumulated_leaf(node) is leaf:
                reaches[id(node)] = True
                stack.pop()
                continue
        if index < len(inputs) and looked < budget:
            stack[-1] = (node, index + 1)
            child = inputs[index][0]
            if child is not None and id(child) not in reaches:
                reaches[id(child)] = False
                keep_alive.append(child)
                stack.append((child, 0))
            continue
        stack.pop()
        reaches[id(node)] = any(child is not None and reaches.get(id(child), False) for child, _ in inputs)
    return looked


def graph_of(torch: Any, named: list[tuple[str, Any]], name: str,
             memory: Mapping[walker.NodeKey, NodeGrads] | None = None) -> Graph:
    """The graph of the tensor the user calls `name` (as the inspector lists it), each node
    with the gradients `memory` holds for it."""
    names = TensorNames(named)
    for label, t in named:
        if label == name:
            nodes, total, cut = autograd_graph(torch, t, names, memory)
            is_leaf, requires_grad = bool(t.is_leaf), bool(t.requires_grad)
            with no_collections():
                users = leaf_users(named, t) if is_leaf and requires_grad else None
            return Graph(name, _shape(t), _dtype(t), requires_grad, is_leaf, nodes, total, cut, used_by=users)
    return Graph.failed(name, f"no tensor named {name}")
