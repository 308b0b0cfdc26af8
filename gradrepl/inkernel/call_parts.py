"""Small readers of a backward call's parts for the tracer: its arguments bound quickly, its
roots and leaves named or described, the node a backward starts at, and whether torch itself
is compiling. Never imports torch."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any

from gradrepl.inkernel.values import shape_of
from gradrepl.inkernel.walker import node_name

Binder = Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]


def binder(signature: inspect.Signature) -> Binder:
    """`signature.bind(*args, **kwargs).arguments`, without its cost when each parameter is
    passed at most once, by position or by name (as Tensor.backward does); bind() does the rest."""
    names = list(signature.parameters)
    required = [name for name, p in signature.parameters.items() if p.default is p.empty]
    plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in signature.parameters.values())

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if plain and len(args) <= len(names):
            arguments = dict(zip(names, args, strict=False))
            if (all(name in names and name not in arguments for name in kwargs)
                    and all(name in arguments or name in kwargs for name in required)):
                arguments.update(kwargs)
                return arguments
        return signature.bind(*args, **kwargs).arguments

    return bind


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def name_or(names: dict[int, str], t: Any) -> str:
    return names.get(id(t)) or describe_unnamed(t)


def describe_unnamed(t: Any) -> str:
    shape = "x".join("*" if size is None else str(size) for size in shape_of(t)) or "scalar"
    grad_fn = getattr(t, "grad_fn", None)
    origin = f" from {node_name(grad_fn)}" if grad_fn is not None else ""
    return f"{shape} {str(t.dtype).removeprefix('torch.')} tensor{origin}"


class KnownNames:
    """The names the calls described in full found, for the calls described in brief (which do
    not read the namespace): by id, checked by a weak reference, for the roots and leaves seen."""

    def __init__(self) -> None:
        self._names: dict[int, tuple[weakref.ref[Any], str]] = {}

    def clear(self) -> None:
        self._names.clear()

    def note(self, tensor: Any, name: str) -> None:
        entry = self._names.get(id(tensor))
        if entry is not None and entry[0]() is tensor and entry[1] == name:
            return
        try:
            self._names[id(tensor)] = (weakref.ref(tensor), name)
        except TypeError:
            pass

    def name_of(self, tensor: Any) -> str | None:
        entry = self._names.get(id(tensor))
        return entry[1] if entry is not None and entry[0]() is tensor else None


def compiling_check(torch: Any) -> Callable[[], bool]:
    """torch.compiler.is_compiling: true while torch.compile or torch.export traces, also when
    aot_autograd runs autograd.grad to trace a backward (a user's own backward call in a
    compiled function breaks the graph and runs eagerly, where it is false)."""
    check = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return check if callable(check) else _never


def _never() -> bool:
    return False


def start_node(torch: Any, t: Any) -> Any:
    """The node a backward from `t` starts at: its grad_fn; for a leaf that requires grad, the
    AccumulateGrad node that writes its .grad (Python reaches it only through a view of it)."""
    grad_fn = getattr(t, "grad_fn", None)
    if grad_fn is not None or not getattr(t, "requires_grad", False) or not getattr(t, "is_leaf", False):
        return grad_fn
    try:
        with torch.enable_grad():
            return t.view_as(t).grad_fn.next_functions[0][0]
    except Exception:
        return None
