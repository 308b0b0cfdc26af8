"""A tensor's autograd graph as plain data, read inside the kernel from its `grad_fn`.

Nodes are numbered in the order a depth-first walk from the root first meets them, which
is the order a tree drawing of the graph shows them; a node met again is referred to by its
number, so a DAG stays linear in size. Each node lists the tensors its backward saved: their
shapes, the user's name for them, and whether they were modified in place since they were
saved (the version check that fails at backward) or freed by an earlier backward.

Like the probe, this never imports torch itself and never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

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


def _shape(t: Any) -> list[int]:
    return [int(size) for size in t.shape]


def _dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def _saved_entries(torch: Any, node: Any, names: TensorNames) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The tensors a node saved for its backward, and the other values it saved (an
    exponent, a dim), sizes and strides left out."""
    tensors: list[dict[str, Any]] = []
    values: dict[str, str] = {}
    for attr in sorted(a for a in dir(node) if a.startswith("_saved_")):
        name = attr.removeprefix("_saved_")
        if name.endswith(_SHAPE_SUFFIXES):
            continue
        entry: dict[str, Any] = {"name": name, "state": "ok"}
        try:
            value = getattr(node, attr)
        except Exception as exc:
            message = str(exc)
            versions = _VERSIONS.search(message)
            if versions is not None:
                entry["state"] = "modified"
                entry["version"], entry["saved_version"] = int(versions.group(1)), int(versions.group(2))
            elif "freed" in message or "second time" in message:
                entry["state"] = "freed"
            else:
                entry["state"] = "unreadable"
                entry["detail"] = f"{type(exc).__name__}: {message.splitlines()[0] if message else ''}"[:200]
            raw = getattr(node, "_raw" + attr, None)
            data = getattr(raw, "data", None) if raw is not None else None
            if isinstance(data, torch.Tensor):
                entry.update(shape=_shape(data), dtype=_dtype(data), tensor=names.of(data))
            tensors.append(entry)
            continue
        if isinstance(value, torch.Tensor):
            entry.update(shape=_shape(value), dtype=_dtype(value), tensor=names.of(value))
            tensors.append(entry)
        elif value is not None:
            text = repr(value) if isinstance(value, (int, float, bool, tuple, list, str)) else type(value).__name__
            values[name] = text if len(text) <= MAX_SAVED_VALUE else text[: MAX_SAVED_VALUE - 1] + "…"
    return tensors, values


def _describe_node(torch: Any, node: Any, names: TensorNames) -> dict[str, Any]:
    described: dict[str, Any] = {"name": type(node).__name__, "tensor": names.by_grad_fn.get(id(node))}
    variable = getattr(node, "variable", None)
    if isinstance(variable, torch.Tensor):
        described["leaf"] = {
            "name": names.of(variable),
            "shape": _shape(variable),
            "dtype": _dtype(variable),
        }
    try:
        described["saved"], described["values"] = _saved_entries(torch, node, names)
    except Exception as exc:
        described["saved"], described["values"] = [], {}
        described["note"] = f"saved tensors not read: {type(exc).__name__}"
    return described


def autograd_graph(torch: Any, root: Any, names: TensorNames) -> dict[str, Any]:
    """The graph behind `root.grad_fn`: nodes in depth-first order, each with the numbers
    of the nodes it feeds gradients to (`next`)."""
    start = getattr(root, "grad_fn", None)
    if start is None:
        return {"nodes": [], "total": 0, "described": 0}
    number: dict[int, int] = {}
    order: list[Any] = []
    stack = [start]
    while stack and len(order) < MAX_GRAPH_WALK:
        node = stack.pop()
        if id(node) in number:
            continue
        number[id(node)] = len(order)
        order.append(node)
        children = [child for child, _ in getattr(node, "next_functions", ()) if child is not None]
        stack.extend(child for child in reversed(children) if id(child) not in number)
    described = []
    for node in order[:MAX_GRAPH_NODES]:
        entry = _describe_node(torch, node, names)
        # Inputs that need no gradient (None in next_functions) are counted, not listed.
        next_functions = list(getattr(node, "next_functions", ()))
        entry["next"] = [number.get(id(child), -1) for child, _ in next_functions if child is not None]
        entry["no_grad_inputs"] = sum(1 for child, _ in next_functions if child is None)
        described.append(entry)
    # Past MAX_GRAPH_WALK the count is a lower bound (`walk_cut`).
    return {"nodes": described, "total": len(order), "described": len(described), "walk_cut": bool(stack)}


def graph_of(torch: Any, named: list[tuple[str, Any]], name: str) -> dict[str, Any]:
    """The graph of the tensor the user calls `name` (as the inspector lists it)."""
    names = TensorNames(named)
    for label, t in named:
        if label == name:
            graph = autograd_graph(torch, t, names)
            graph.update(
                root=name,
                shape=_shape(t),
                dtype=_dtype(t),
                requires_grad=bool(t.requires_grad),
                is_leaf=bool(t.is_leaf),
            )
            return graph
    return {"root": name, "error": f"no tensor named {name}"}
