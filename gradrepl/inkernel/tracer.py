"""Backward calls traced as they happen, inside the kernel: `Tensor.backward`,
`torch.autograd.backward` and `torch.autograd.grad`, whether the cell calls them or code it
calls does (an optimizer loop, `torch.autograd.functional`).

Tensor.backward goes through `torch.autograd.backward`, looked up on the module at each
call, so wrapping the two module functions sees every call. Like the probe, this never
imports torch itself and never raises into the user's code: a failure to describe a call
becomes a note in its event, and the call's own error is recorded and re-raised untouched.

The nodes of an event are those the engine ran, in the order it ran them: for the call, every
node of the graph gets a node pre-hook that notes its node and returns None (the gradients
pass unchanged; the user's own hooks on the node run as before), and all of them are removed
when the call returns or raises. A graph too big to hook (MAX_EXACT) gets the order the
engine's rule predicts instead, and says so (`node_order`).

The .grads a call wrote are found by comparing each leaf's grad (its object and version)
before and after the call: the leaves of the walked graph, and, when the graph is bigger than
the walk (MAX_WALK, `walk_cut`), every named leaf too, so a grad written past the walk's end
is still reported. Calls torch makes itself while compiling (aot_autograd traces the joint
graph with autograd.grad) are not the user's and are not traced.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, NamedTuple

from gradrepl.inkernel import walker
from gradrepl.inkernel.jacobian import VjpView
from gradrepl.inkernel.node_order import RunRecorder, predicted_order
from gradrepl.inkernel.values import shape_of
from gradrepl.protocol import BackwardEvent, BackwardKind, LeafChange, NodeOrder, RootLabel, Values

MAX_EVENTS = 50  # per cell; later calls are counted, not described
MAX_NODES = 200  # graph nodes listed per event
MAX_WALK = 5000  # graph nodes visited per event
# Nodes hooked to record the order the engine runs them in; a bigger graph gets it predicted.
# Recording costs 2.5-3.5 µs a node (register, call, remove; torch 2.13, this machine), which on
# the cheapest graph (a chain of scalar multiplies, 6.5 µs a node to build and run) makes a call
# 1.7x its untraced time, and 2,000 nodes add at most ~7 ms to a call.
MAX_EXACT = 2000


class _Root(NamedTuple):
    name: str | None
    description: str
    grad_fn: str | None
    shape: tuple[int | None, ...]
    value: Any  # a capture


class _LeafChange(NamedTuple):
    name: str
    before: Any  # captures
    after: Any
    accumulated: bool


@dataclass
class _Call:
    """One backward call while it is traced; its tensors are still captures (see `record`)."""

    kind: BackwardKind
    cell: int | None
    roots: list[_Root] = field(default_factory=list)
    gradient: list[Any] | None = None
    retain_graph: bool | None = None
    create_graph: bool = False
    inputs: list[str] | None = None
    nodes: list[str] = field(default_factory=list)
    nodes_total: int = 0
    node_order: NodeOrder = "predicted"
    walk_cut: bool = False
    leaves: list[_LeafChange] = field(default_factory=list)
    grads: list[Any] | None = None
    error: str | None = None
    vjp: VjpView | None = None
    notes: list[str] = field(default_factory=list)

    def record(self, values: Callable[[Any], Values | None], cell: int | None) -> BackwardEvent:
        def all_values(captures: list[Any] | None) -> tuple[Values | None, ...] | None:
            return None if captures is None else tuple([values(c) for c in captures])

        return BackwardEvent(
            kind=self.kind, cell=cell,
            roots=tuple([RootLabel(r.name, r.description, r.grad_fn, r.shape, values(r.value)) for r in self.roots]),
            gradient=all_values(self.gradient), retain_graph=self.retain_graph, create_graph=self.create_graph,
            inputs=None if self.inputs is None else tuple(self.inputs),
            nodes=tuple(self.nodes), nodes_total=self.nodes_total, node_order=self.node_order,
            leaves=tuple([LeafChange(c.name, values(c.before), values(c.after), c.accumulated) for c in self.leaves]),
            grads=all_values(self.grads), error=self.error,
            jacobian=None if self.vjp is None else self.vjp.record(), notes=tuple(self.notes), walk_cut=self.walk_cut,
        )


class BackwardTracer:
    """Collects one event per backward call during a cell (see `start_cell`)."""

    def __init__(self, names: Callable[[Any], Iterator[tuple[str, Any]]], guard: Callable[[Any], Any],
                 capture: Callable[[Any, Any], Any], render: Callable[[Any, Any], Values | None]) -> None:
        self._names = names  # torch -> (name, tensor) for every tensor the user named
        self._guard = guard  # torch -> context manager: no_grad, no subclass dispatch
        self._capture = capture  # (torch, tensor) -> a copy of what a preview shows (cheap)
        self._render = render  # (torch, capture) -> preview (and stats) as a Values record
        self.events: list[_Call] = []
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
        kinds: tuple[BackwardKind, ...] = ("backward", "grad")
        for kind in kinds:
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

    def _wrap(self, torch: Any, kind: BackwardKind, original: Callable[..., Any]) -> Callable[..., Any]:
        bind = _binder(inspect.signature(original))
        tracer = self
        compiling = _compiling_check(torch)

        @functools.wraps(original)
        def traced(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # read by IPython's tracebacks and by errors.py
            if not tracer.enabled or tracer._depth or compiling():
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

    def _traced_call(self, torch: Any, kind: BackwardKind, original: Callable[..., Any], bind: Binder,
                     args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        call = _Call(kind, self.cell)
        self.events.append(call)
        starts: list[Any] = []
        walked: walker.Walk | None = None
        before: dict[int, tuple[Any, str, Any, Any]] = {}
        view: VjpView | None = None
        recorder: RunRecorder | None = None
        result: Any = None
        try:
            try:
                arguments = bind(args, kwargs)
                names = self._name_map(torch)
                starts, walked, before = self._describe_call(torch, kind, arguments, call, names)
                view = self._begin_vjp(torch, kind, arguments, call, before, names)
            except BaseException as exc:
                call.notes.append(f"call not described: {type(exc).__name__}: {exc}"[:200])
            # Hooked last: computing J calls the nodes directly, which must not count as runs.
            recorder = self._recorder(walked, call)
            result = original(*args, **kwargs)
        except BaseException as exc:
            call.error = f"{type(exc).__name__}: {exc}"[:2000]
            raise
        finally:
            if recorder is not None:
                recorder.stop()
            self._finish(torch, call, starts, walked, recorder, before, result if kind == "grad" else None)
        if view is not None:
            try:
                with self._guard(torch):
                    view.finish(torch, _as_list(result) if kind == "grad" else None)
            except Exception as exc:
                call.notes.append(f"vᵀ·J not compared: {type(exc).__name__}: {exc}"[:200])
        return result

    def _recorder(self, walked: walker.Walk | None, call: _Call) -> RunRecorder | None:
        """Hooks that record the order the nodes run in; None when the order is predicted instead."""
        if walked is None or walked.cut or len(walked) > MAX_EXACT:
            return None
        try:
            return RunRecorder(walked)
        except Exception as exc:
            call.notes.append(f"node order predicted: a node took no hook ({type(exc).__name__}: {exc})"[:200])
            return None

    def _begin_vjp(self, torch: Any, kind: str, arguments: dict[str, Any], call: _Call,
                   before: dict[int, tuple[Any, str, Any, Any]], names: dict[int, str]) -> VjpView | None:
        """J and vᵀ·J for a call with one non-scalar root and its v, before the call frees the graph."""
        roots = _as_list(arguments.get("tensors" if kind == "backward" else "outputs"))
        gradients = _as_list(arguments.get("grad_tensors" if kind == "backward" else "grad_outputs"))
        if len(roots) != 1 or len(gradients) != 1 or gradients[0] is None or roots[0].numel() <= 1:
            return None
        if getattr(roots[0], "grad_fn", None) is None:
            return None  # a backward from a leaf: J is the identity
        if kind == "backward":
            leaves = [(name, leaf) for leaf, name, _, _ in before.values()]
        else:
            inputs = _as_list(arguments.get("inputs"))
            if not all(getattr(t, "is_leaf", False) for t in inputs):
                call.vjp = VjpView.noted("some inputs are not leaves: the view covers leaves only")
                return None
            leaves = [(_name_or(names, t), t) for t in inputs]
        root_name = (call.roots[0].name or call.roots[0].description) if call.roots else "root"
        with self._guard(torch):
            call.vjp = VjpView.begin(torch, roots[0], root_name, gradients[0], leaves)
        return call.vjp

    def _describe_call(self, torch: Any, kind: str, arguments: dict[str, Any], call: _Call, names: dict[int, str],
                       ) -> tuple[list[Any], walker.Walk, dict[int, tuple[Any, str, Any, Any]]]:
        """Fills in what the call was given; returns the nodes it starts at, the graph's walk, and
        each leaf it may write with that leaf's grad before the call."""
        roots = _as_list(arguments.get("tensors" if kind == "backward" else "outputs"))
        gradients = arguments.get("grad_tensors" if kind == "backward" else "grad_outputs")
        inputs = arguments.get("inputs")
        with self._guard(torch):
            call.roots = [self._root(torch, t, names) for t in roots]
            call.gradient = None if gradients is None else [
                None if g is None else self._capture(torch, g) for g in _as_list(gradients)
            ]
            retain_graph = arguments.get("retain_graph")
            call.retain_graph = None if retain_graph is None else bool(retain_graph)
            call.create_graph = bool(arguments.get("create_graph", False))
            call.inputs = None if inputs is None else [_name_or(names, t) for t in _as_list(inputs)]
            starts = [_start_node(torch, t) for t in roots]
            walked = walker.walk(starts, MAX_WALK)
            # Leaves the call may write into: those of the graph, or the ones named in `inputs`.
            if kind == "backward" and inputs is not None:
                leaves = [t for t in _as_list(inputs) if getattr(t, "is_leaf", False)]
            else:
                leaves = walked.leaves()
                if kind == "backward" and walked.cut:  # the leaves past the walk's end: the named ones
                    leaves += self._named_leaves(torch, {id(leaf) for leaf in leaves})
            before = {}
            if kind == "backward":
                for leaf in leaves:
                    grad = leaf.grad
                    before[id(leaf)] = (leaf, _name_or(names, leaf), None if grad is None else self._capture(torch, grad),
                                        None if grad is None else (id(grad), grad._version))
        return starts, walked, before

    def _finish(self, torch: Any, call: _Call, starts: list[Any], walked: walker.Walk | None,
                recorder: RunRecorder | None, before: dict[int, Any], result: Any) -> None:
        try:
            if recorder is not None:
                call.nodes, call.nodes_total, call.node_order = recorder.node_names(MAX_NODES), len(recorder.ran), "exact"
            elif walked is not None:
                call.nodes, call.nodes_total = predicted_order(walked, starts, MAX_NODES), len(walked)
            call.walk_cut = walked is not None and walked.cut
            with self._guard(torch):
                changed = []
                keys: list[int] = []
                for leaf, name, old, old_key in before.values():
                    grad = leaf.grad
                    new_key = None if grad is None else (id(grad), grad._version)
                    if new_key == old_key:
                        continue
                    new = None if grad is None else self._capture(torch, grad)
                    if (new is None and old is None) or (new is not None and old is not None and new.same_as(old, torch)):
                        continue
                    changed.append(_LeafChange(name, old, new, old is not None))
                    keys.append(id(leaf))
                if recorder is not None and len(changed) > 1:  # in the order the engine wrote them
                    written = recorder.accumulation_order()
                    order = sorted(range(len(changed)), key=lambda at: written.get(keys[at], len(written)))
                    changed = [changed[at] for at in order]
                call.leaves = changed
                if result is not None:
                    call.grads = [None if g is None else self._capture(torch, g) for g in _as_list(result)]
        except BaseException as exc:
            call.notes.append(f"result not described: {type(exc).__name__}: {exc}"[:200])

    # ------------------------------------------------------------ helpers

    def _name_map(self, torch: Any) -> dict[int, str]:
        names: dict[int, str] = {}
        for name, tensor in self._names(torch):
            names.setdefault(id(tensor), name)
        return names

    def _named_leaves(self, torch: Any, known: set[int]) -> list[Any]:
        """The named leaves that require grad, but for those in `known` (by id)."""
        leaves = []
        for _, tensor in self._names(torch):
            if id(tensor) not in known and tensor.is_leaf and tensor.requires_grad:
                known.add(id(tensor))
                leaves.append(tensor)
        return leaves

    def rendered_events(self, *, cell: int | None = None) -> list[BackwardEvent]:
        """This cell's events as protocol records, the captured values turned into previews.
        `cell` numbers them (the probe learns the number once the cell ran); without it, each
        keeps the number start_cell was given."""
        torch = self._installed
        if torch is None:
            return []

        def values(capture: Any) -> Values | None:
            if capture is None:
                return None
            try:
                return self._render(torch, capture)
            except Exception as exc:
                return Values(None, False, None, f"{type(exc).__name__}: {exc}"[:200])

        return [call.record(values, call.cell if cell is None else cell) for call in self.events]

    def _root(self, torch: Any, t: Any, names: dict[int, str]) -> _Root:
        grad_fn = getattr(t, "grad_fn", None)
        return _Root(names.get(id(t)), _describe_unnamed(t), type(grad_fn).__name__ if grad_fn is not None else None,
                     tuple(shape_of(t)), self._capture(torch, t))


Binder = Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]


def _binder(signature: inspect.Signature) -> Binder:
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


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _name_or(names: dict[int, str], t: Any) -> str:
    return names.get(id(t)) or _describe_unnamed(t)


def _describe_unnamed(t: Any) -> str:
    shape = "x".join("*" if size is None else str(size) for size in shape_of(t)) or "scalar"
    grad_fn = getattr(t, "grad_fn", None)
    origin = f" from {type(grad_fn).__name__}" if grad_fn is not None else ""
    return f"{shape} {str(t.dtype).removeprefix('torch.')} tensor{origin}"


def _compiling_check(torch: Any) -> Callable[[], bool]:
    """torch.compiler.is_compiling: true while torch.compile or torch.export traces, also when
    aot_autograd runs autograd.grad to trace a backward (a user's own backward call in a
    compiled function breaks the graph and runs eagerly, where it is false)."""
    check = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return check if callable(check) else _never


def _never() -> bool:
    return False


def _start_node(torch: Any, t: Any) -> Any:
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


def own_codes() -> frozenset[CodeType]:
    """The code of the tracer's frames, which sit between a user's call and torch's in a
    traceback (errors.hide_frames_from_tracebacks takes them out)."""
    wrapper = [code for code in BackwardTracer._wrap.__code__.co_consts
               if isinstance(code, CodeType) and code.co_name == "traced"]
    return frozenset([BackwardTracer._traced_call.__code__, *wrapper])
