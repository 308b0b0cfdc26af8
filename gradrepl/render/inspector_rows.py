"""The tensor inspector's rows, without Textual: one per tensor object (the probe lists each
once, with its other names), a module's parameters and buffers folded under a summary row of
its own, or, with a filter, the tensors whose names hold the filter's text.

How a module folds: one that holds at most FOLD_OVER tensors lists them under its summary
row by their dotted names (`0.weight`), and starts unfolded. A bigger one starts folded (a
100-layer model is one row), and unfolded lists its own tensors, then each submodule as a
folded summary row of its own, so each layer's grad norm can be read before opening it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from gradrepl.protocol import TensorInfo

FOLD_OVER = 8
MODULE_KEY = "\x00module "  # a module row's key: its path after this (no tensor's name starts so)


@dataclass(frozen=True)
class TensorRow:
    info: TensorInfo
    label: str  # its name as listed: relative to the module row above it
    depth: int = 0

    @property
    def key(self) -> str:
        return self.info.name


@dataclass(frozen=True)
class ModuleRow:
    path: tuple[str, ...]  # the user's name, then submodule labels: ("model", "layers", "0")
    label: str  # as listed: "model", or "layers.0" for a chain of modules holding nothing else
    type_name: str
    tensors: tuple[TensorInfo, ...]  # every parameter and buffer it holds, its submodules' too
    unfolded: bool
    depth: int = 0

    @property
    def key(self) -> str:
        return module_key(self.path)


Row = TensorRow | ModuleRow


def module_key(path: tuple[str, ...]) -> str:
    return MODULE_KEY + ".".join(path)


@dataclass
class _Module:
    path: tuple[str, ...]
    type_name: str
    held: list[TensorInfo] = field(default_factory=list)  # in the probe's order, submodules' included
    own: list[TensorInfo] = field(default_factory=list)
    children: dict[str, _Module] = field(default_factory=dict)


def _module_tree(tensors: Sequence[TensorInfo]) -> dict[str, _Module]:
    """The user's modules by name, each with what it holds."""
    tops: dict[str, _Module] = {}
    for info in tensors:
        path, types = info.module_path, info.module_types
        if not path:
            continue
        node = tops.get(path[0])
        if node is None:
            node = tops[path[0]] = _Module(path[:1], types[0] if types else "Module")
        node.held.append(info)
        for depth in range(1, len(path)):
            child = node.children.get(path[depth])
            if child is None:
                child = node.children[path[depth]] = _Module(path[: depth + 1], types[depth] if depth < len(types) else "Module")
            node = child
            node.held.append(info)
        node.own.append(info)
    return tops


def unfolded_at_first(path: tuple[str, ...], held: int) -> bool:
    """A user's module small enough to list is open; a big one, and every submodule, folded."""
    return len(path) == 1 and held <= FOLD_OVER


def _relative(info: TensorInfo, path: tuple[str, ...]) -> str:
    return info.name[len(".".join(path)) + 1:]


def matches(info: TensorInfo, text: str) -> bool:
    """Whether any of the tensor's names holds `text` (case ignored)."""
    wanted = text.casefold()
    return any(wanted in name.casefold() for name in info.names)


def inspector_rows(tensors: Sequence[TensorInfo], unfolded: Mapping[tuple[str, ...], bool] | None = None,
                   filter_text: str = "") -> list[Row]:
    """The rows in the probe's order. `unfolded` holds the user's choices by module path;
    a module not in it is as `unfolded_at_first` says. With `filter_text`, only the
    matching tensors, each under its full name, none folded."""
    if filter_text:
        return [TensorRow(info, info.name) for info in tensors if matches(info, filter_text)]
    choices = unfolded or {}
    tops = _module_tree(tensors)
    rows: list[Row] = []
    listed: set[str] = set()
    for info in tensors:
        if not info.module_path:
            rows.append(TensorRow(info, info.name))
        elif info.module_path[0] not in listed:
            listed.add(info.module_path[0])
            node = tops[info.module_path[0]]
            rows.extend(_module_rows(node, node.path[0], 0, choices))
    return rows


def _module_rows(node: _Module, label: str, depth: int, choices: Mapping[tuple[str, ...], bool]) -> Iterator[Row]:
    is_open = choices.get(node.path, unfolded_at_first(node.path, len(node.held)))
    yield ModuleRow(node.path, label, node.type_name, tuple(node.held), is_open, depth)
    if not is_open:
        return
    if len(node.held) <= FOLD_OVER:
        for info in node.held:
            yield TensorRow(info, _relative(info, node.path), depth + 1)
        return
    for info in node.own:
        yield TensorRow(info, info.label, depth + 1)
    for child in node.children.values():
        labels = [child.path[-1]]
        while not child.own and len(child.children) == 1:  # model.encoder.layers: one row, "encoder.layers"
            child = next(iter(child.children.values()))
            labels.append(child.path[-1])
        if len(child.held) == 1:
            yield TensorRow(child.held[0], _relative(child.held[0], node.path), depth + 1)
        else:
            yield from _module_rows(child, ".".join(labels), depth + 1, choices)
