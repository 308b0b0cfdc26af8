"""Backward calls traced as they happen, inside the kernel: `Tensor.backward`,
`torch.autograd.backward` and `torch.autograd.grad`, whether the cell calls them or code it
calls does (an optimizer loop, `torch.autograd.functional`).

Tensor.backward goes through `torch.autograd.backward`, looked up on the module at each
call, so wrapping the two module functions sees every call. Like the probe, this never
imports torch itself and never raises into the user's code: a failure to describe a call
becomes a note in its event, and the call's own error is recorded and re-raised untouched.
"""

from __future__ import annotations

import functools
import heapq
import inspect
import itertools
import sys
from collections.abc import Callable, Iterator
from typing import Any

from gradrepl.inkernel.jacobian import VjpView

MAX_EVENTS = 50  # per cell; later calls are counted, not described
MAX_NODES = 200  # graph nodes listed per event
MAX_WALK = 5000  # graph nodes visited per event


class BackwardTracer:
    """Collects one event per backward call during a cell (see `start_cell`)."""

    def __init__(self, names: Callable[[Any], Iterator[tuple[str, Any]]], guard: Callable[[Any], Any],
                 capture: Callable[[Any, Any], Any], render: Callable[[Any, Any], dict[str, Any] | None]) -> None:
        self._names = names  # torch -> (name, tensor) for every tensor the user named
        self._guard = guard  # torch -> context manager: no_grad, no subclass dispatch, no warnings
        self._capture = capture  # (torch, tensor) -> a copy of what a preview shows (cheap)
        self._render = render  # (torch, capture) -> preview (and stats) as plain data
        self.events: list[dict[str, Any]] = []
        self.uncounted = 0  # calls past MAX_EVENTS in this cell
        self.cell: int | None = None
        self.enabled = True
        self._installed: Any = None
        self._depth = 0

    def start_cell(self, execution_count: int | None) -> None:
        self.events = []
        self.uncounted = 0
        self.cell = execution_count

    # ------------------------------------------------------------ wiring

    def install(self, torch: Any) -> None:
        """Wrap torch.autograd.backward and torch.autograd.grad (once per torch module)."""
        if self._installed is torch:
            return
        autograd = torch.autograd
        for kind in ("backward", "grad"):
            original = getattr(autograd, kind)
            # Wrapped by an earlier tracer (another probe in the same process): this one takes over.
            original = getattr(original, "__gradrepl_original__", original)
            setattr(autograd, kind, self._wrap(torch, kind, original))
        self._installed = torch

    def uninstall(self) -> None:
        torch, self._installed = self._installed, None
        if torch is None:
            return
        for kind in ("backward", "grad"):
            original = getattr(getattr(torch.autograd, kind), "__gradrepl_original__", None)
            if original is not None:
                setattr(torch.autograd, kind, original)

    def _wrap(self, torch: Any, kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
        bind = _binder(inspect.signature(original))
        tracer = self

        @functools.wraps(original)
        def traced(*args: Any, **kwargs: Any) -> Any:
            if not tracer.enabled or tracer._depth:
                return original(*args, **kwargs)
            if len(tracer.events) >= MAX_EVENTS:
                tracer.uncounted += 1
                return original(*args, **kwargs)
            tracer._depth += 1
            try:
                return tracer._traced_call(torch, kind, original, bind, args, kwargs)
            finally:
                tracer._depth -= 1

        traced.__gradrepl_original__ = original  # type: ignore[attr-defined]
        return traced

    # ------------------------------------------------------------ one call

    def _traced_call(self, torch: Any, kind: str, original: Callable[..., Any], bind: Binder,
                     args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        event: dict[str, Any] = {"cell": self.cell, "kind": kind, "notes": []}
        before: dict[int, tuple[Any, str | None, dict[str, Any] | None, Any]] = {}
        view: VjpView | None = None
        try:
            arguments = bind(args, kwargs)
            before = self._describe_call(torch, kind, arguments, event)
            view = self._begin_vjp(torch, kind, arguments, event, before)
        except BaseException as exc:
            event["notes"].append(f"call not described: {type(exc).__name__}: {exc}"[:200])
        self.events.append(event)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            event["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            self._finish(torch, event, before, None)
            raise
        self._finish(torch, event, before, result if kind == "grad" else None)
        if view is not None:
            try:
                with self._guard(torch):
                    view.finish(torch, _as_list(result) if kind == "grad" else None)
            except Exception as exc:
                event["notes"].append(f"vᵀ·J not compared: {type(exc).__name__}: {exc}"[:200])
        return result

    def _begin_vjp(self, torch: Any, kind: str, arguments: dict[str, Any], event: dict[str, Any],
                   before: dict[int, tuple[Any, str | None, Any, Any]]) -> VjpView | None:
        """J and vᵀ·J for a call with one non-scalar root and its v, before the call frees the graph."""
        roots = _as_list(arguments.get("tensors" if kind == "backward" else "outputs"))
        gradients = _as_list(arguments.get("grad_tensors" if kind == "backward" else "grad_outputs"))
        if len(roots) != 1 or len(gradients) != 1 or gradients[0] is None or roots[0].numel() <= 1:
            return None
        if kind == "backward":
            leaves = [(name or _describe_unnamed(leaf), leaf) for leaf, name, _, _ in before.values()]
        else:
            inputs = _as_list(arguments.get("inputs"))
            if not all(getattr(t, "is_leaf", False) for t in inputs):
                event["jacobian"] = {"note": "some inputs are not leaves: the view covers leaves only"}
                return None
            names = self._name_map(torch)
            leaves = [(_name_or(names, t), t) for t in inputs]
        label = (event.get("roots") or [{}])[0]
        with self._guard(torch):
            view = VjpView.begin(torch, roots[0], label.get("name") or label.get("description") or "root", gradients[0], leaves)
        if view is not None:
            event["jacobian"] = view.data
        return view

    def _describe_call(self, torch: Any, kind: str, arguments: dict[str, Any],
                       event: dict[str, Any]) -> dict[int, tuple[Any, str | None, dict[str, Any] | None, Any]]:
        names = self._name_map(torch)
        roots = _as_list(arguments.get("tensors" if kind == "backward" else "outputs"))
        gradients = arguments.get("grad_tensors" if kind == "backward" else "grad_outputs")
        inputs = arguments.get("inputs")
        with self._guard(torch):
            event["roots"] = [self._tensor_label(torch, t, names) for t in roots]
            event["gradient"] = None if gradients is None else [
                None if g is None else self._capture(torch, g) for g in _as_list(gradients)
            ]
            event["retain_graph"] = arguments.get("retain_graph")
            event["create_graph"] = bool(arguments.get("create_graph", False))
            event["inputs"] = None if inputs is None else [_name_or(names, t) for t in _as_list(inputs)]
            nodes, total, leaves = _walk_graph(roots)
            event["nodes"] = nodes
            event["nodes_total"] = total
            # Leaves the call may write into: those of the graph, or the ones named in `inputs`.
            if kind == "backward" and inputs is not None:
                leaves = [t for t in _as_list(inputs) if getattr(t, "is_leaf", False)]
            before = {}
            if kind == "backward":
                for leaf in leaves:
                    grad = leaf.grad
                    before[id(leaf)] = (leaf, _name_or(names, leaf), None if grad is None else self._capture(torch, grad),
                                        None if grad is None else (id(grad), grad._version))
        return before

    def _finish(self, torch: Any, event: dict[str, Any], before: dict[int, Any], result: Any) -> None:
        try:
            with self._guard(torch):
                changed = []
                for leaf, name, old, old_key in before.values():
                    grad = leaf.grad
                    new_key = None if grad is None else (id(grad), grad._version)
                    if new_key == old_key:
                        continue
                    new = None if grad is None else self._capture(torch, grad)
                    if (new is None and old is None) or (new is not None and new.same_as(old, torch)):
                        continue
                    changed.append({"name": name, "before": old, "after": new, "accumulated": old is not None})
                event["leaves"] = changed
                if result is not None:
                    event["grads"] = [None if g is None else self._capture(torch, g) for g in _as_list(result)]
        except BaseException as exc:
            event["notes"].append(f"result not described: {type(exc).__name__}: {exc}"[:200])

    # ------------------------------------------------------------ helpers

    def _name_map(self, torch: Any) -> dict[int, str]:
        names: dict[int, str] = {}
        for name, tensor in self._names(torch):
            names.setdefault(id(tensor), name)
        return names

    def rendered_events(self) -> list[dict[str, Any]]:
        """This cell's events as plain data: the captured values turned into previews."""
        torch = self._installed
        if torch is None:
            return []

        def render(value: Any) -> Any:
            if value is None:
                return None
            try:
                return self._render(torch, value)
            except Exception as exc:
                return {"preview": None, "truncated": False, "stats": None, "note": f"{type(exc).__name__}: {exc}"[:200]}

        rendered = []
        for event in self.events:
            event = dict(event)
            event["roots"] = [{**root, "value": render(root.get("value"))} for root in event.get("roots") or ()]
            if event.get("gradient") is not None:
                event["gradient"] = [render(g) for g in event["gradient"]]
            if "leaves" in event:
                event["leaves"] = [{**leaf, "before": render(leaf["before"]), "after": render(leaf["after"])}
                                   for leaf in event["leaves"]]
            if "grads" in event:
                event["grads"] = [render(g) for g in event["grads"]]
            rendered.append(event)
        return rendered

    def _tensor_label(self, torch: Any, t: Any, names: dict[int, str]) -> dict[str, Any]:
        grad_fn = getattr(t, "grad_fn", None)
        return {
            "name": names.get(id(t)),
            "description": _describe_unnamed(t),
            "grad_fn": type(grad_fn).__name__ if grad_fn is not None else None,
            "value": self._capture(torch, t),
        }


Binder = Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]


def _binder(signature: inspect.Signature) -> Binder:
    """`signature.bind(*args, **kwargs).arguments`, without its cost when each parameter is
    passed at most once, by position or by name (as Tensor.backward does); bind() does the rest."""
    names = list(signature.parameters)
    required = [name for name, p in signature.parameters.items() if p.default is p.empty]
    plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in signature.parameters.values())

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if plain and len(args) <= len(names):
            arguments = dict(zip(names, args))
            if (all(name in names and name not in arguments for name in kwargs)
                    and all(name in arguments or name in kwargs for name in required)):
                arguments.update(kwargs)
                return arguments
        return signature.bind(*args, **kwargs).arguments

    return bind


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _name_or(names: dict[int, str], t: Any) -> str:
    return names.get(id(t)) or _describe_unnamed(t)


def _describe_unnamed(t: Any) -> str:
    shape = "x".join(str(size) for size in tuple(t.shape)) or "scalar"
    grad_fn = getattr(t, "grad_fn", None)
    origin = f" from {type(grad_fn).__name__}" if grad_fn is not None else ""
    return f"{shape} {str(t.dtype).removeprefix('torch.')} tensor{origin}"


def _walk_graph(roots: list[Any]) -> tuple[list[str], int, list[Any]]:
    """The graph's nodes in the order the engine runs them, how many there are (up to
    MAX_WALK), and the leaf tensors it accumulates into.

    The engine runs a node once every node that feeds it a gradient has run, and among
    the ready ones the most recently created first; so does this ordering."""
    seen: dict[int, Any] = {}  # id -> node, which keeps each id the node's while the walk runs
    waiting: dict[int, int] = {}  # node -> how many of its consumers have not run yet
    stack = [getattr(t, "grad_fn", None) for t in roots]
    leaves: list[Any] = []
    while stack and len(seen) < MAX_WALK:
        node = stack.pop()
        key = id(node)
        if node is None or key in seen:
            continue
        seen[key] = node
        variable = getattr(node, "variable", None)
        if variable is not None:
            leaves.append(variable)
        for child, _ in getattr(node, "next_functions", ()):
            if child is not None:
                key = id(child)
                waiting[key] = waiting.get(key, 0) + 1
                if key not in seen:
                    stack.append(child)
    # (-priority, when it became ready, node): the heap pops what the engine runs next.
    ready: list[tuple[int, int, Any]] = []
    arrival = itertools.count()
    starts = {id(n): n for n in (getattr(t, "grad_fn", None) for t in roots) if n is not None and not waiting.get(id(n))}
    for node in starts.values():
        heapq.heappush(ready, (-_sequence_number(node), next(arrival), node))
    order: list[Any] = []
    while ready and len(order) < MAX_NODES:
        node = heapq.heappop(ready)[2]
        order.append(node)
        if id(node) not in seen:
            continue  # a root the walk did not reach (cut at MAX_WALK): it was not counted in `waiting`
        for child, _ in getattr(node, "next_functions", ()):
            key = id(child)
            if child is None or key not in seen:
                continue
            waiting[key] -= 1
            if waiting[key] == 0:
                heapq.heappush(ready, (-_sequence_number(child), next(arrival), child))
    return [type(node).__name__ for node in order], len(seen), leaves


def _sequence_number(node: Any) -> int:
    if getattr(node, "variable", None) is not None:
        return -1  # AccumulateGrad: it has the largest number, yet runs once its inputs are in
    number = getattr(node, "_sequence_nr", None)
    try:
        return int(number()) if number is not None else -1
    except Exception:
        return -1


class TorchImportWatcher:
    """Calls `on_import(torch)` once torch has been imported, also when a cell imports it."""

    def __init__(self, on_import: Callable[[Any], None]) -> None:
        self.on_import = on_import

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                self._wrap_loader(spec.loader)
                return spec
        return None

    def _wrap_loader(self, loader: Any) -> None:
        exec_module = loader.exec_module
        watcher = self

        def exec_then_notify(module: Any) -> None:
            exec_module(module)
            try:
                watcher.on_import(module)
            except Exception:
                pass

        loader.exec_module = exec_then_notify
