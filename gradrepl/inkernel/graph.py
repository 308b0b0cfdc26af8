"""A tensor's autograd graph as a `protocol.Graph`, read inside the kernel from its `grad_fn`.

Nodes are numbered in the order a depth-first walk from the root first meets them (`walker.walk`),
which is the order a tree drawing of the graph shows them; a node met again is referred to by
its number, so a DAG stays linear in size. Each node lists the tensors its backward saved:
their shapes, the user's name for them, and whether they were modified in place since they
were saved (the version check that fails at backward) or freed by an earlier backward.

Like the probe, this never imports torch itself and never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gradrepl.inkernel import walker
from gradrepl.protocol import Graph, GraphLeaf, GraphNode, SavedTensor

MAX_GRAPH_NODES = 300  # nodes described; the rest are counted
MAX_GRAPH_WALK = 20_000  # nodes counted
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


def _saved_entries(torch: Any, node: Any, names: TensorNames) -> tuple[list[SavedTensor], list[tuple[str, str]]]:
    """The tensors a node saved for its backward, and the other values it saved (an
    exponent, a dim), sizes and strides left out."""
    tensors: list[SavedTensor] = []
    values: list[tuple[str, str]] = []
    for attr in sorted(a for a in dir(node) if a.startswith("_saved_")):
        name = attr.removeprefix("_saved_")
        if name.endswith(_SHAPE_SUFFIXES):
            continue
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


def _describe_node(torch: Any, node: Any, position: dict[int, int], names: TensorNames) -> GraphNode:
    edges = node.next_functions
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
        name=type(node).__name__,
        tensor=names.by_grad_fn.get(id(node)),
        leaf=leaf,
        saved=tuple(saved),
        values=tuple(values),
        # Inputs that need no gradient (None in next_functions) are counted, not listed.
        next=tuple(position.get(id(child), -1) for child, _ in edges if child is not None),
        no_grad_inputs=sum(1 for child, _ in edges if child is None),
        note=note,
    )


def autograd_graph(torch: Any, root: Any, names: TensorNames) -> tuple[tuple[GraphNode, ...], int, bool]:
    """The graph behind `root.grad_fn`: the first MAX_GRAPH_NODES nodes in depth-first order,
    each with the numbers of the nodes it feeds gradients to; how many nodes were counted;
    whether the count stopped at MAX_GRAPH_WALK (then it is a lower bound)."""
    walked = walker.walk([getattr(root, "grad_fn", None)], MAX_GRAPH_WALK)
    described = tuple(_describe_node(torch, node, walked.position, names) for node in walked.nodes[:MAX_GRAPH_NODES])
    return described, len(walked), walked.cut


def graph_of(torch: Any, named: list[tuple[str, Any]], name: str) -> Graph:
    """The graph of the tensor the user calls `name` (as the inspector lists it)."""
    names = TensorNames(named)
    for label, t in named:
        if label == name:
            nodes, total, cut = autograd_graph(torch, t, names)
            return Graph(name, _shape(t), _dtype(t), bool(t.requires_grad), bool(t.is_leaf), nodes, total, cut)
    return Graph.failed(name, f"no tensor named {name}")
