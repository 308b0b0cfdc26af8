"""Backward calls traced as they happen, inside the kernel: `Tensor.backward`,
`torch.autograd.backward` and `torch.autograd.grad`, whether the cell calls them or code it
calls does (an optimizer loop, `torch.autograd.functional`).

Tensor.backward goes through `torch.autograd.backward`, looked up on the module at each
call, so wrapping the two module functions sees every call. Like the probe, this never
imports torch itself and never raises into the user's code: a failure to describe a call
becomes a note in its event, and the call's own error is recorded and re-raised untouched.

The first DESCRIBED_IN_FULL calls of a cell are described in full. Their nodes are those the
engine ran, in the order it ran them: for the call, every node of the graph gets a node
pre-hook that notes its node and returns None (the gradients pass unchanged; the user's own
hooks on the node run as before), and all of them are removed when the call returns or
raises. A graph too big to hook (MAX_EXACT) gets the order the engine's rule predicts
instead, and says so (`node_order`). A tensor with hooks of its own (`register_hook`) gets an
observer before and after them, to say what they did to its grad. Later calls (a training
loop's) are described in brief, cheaply: no node hooks (the order is predicted), no values
before, no Jacobian. cell_calls.py keeps the first and the last of them and counts the rest.

The .grads a call wrote are found by comparing each leaf's grad (its object and version)
before and after the call: the leaves of the walked graph, the named non-leaves that retain
their grad, and, when the graph is bigger than the walk (MAX_WALK, `walk_cut`), every named
leaf too, so a grad written past the walk's end is still reported. What changed a grad
between two calls (opt.zero_grad(), x.grad = None) is told from the key the last call left
(grad_watch.py). Calls torch makes itself while compiling (aot_autograd traces the joint
graph with autograd.grad) are not the user's and are not traced.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from types import CodeType
from typing import Any

from gradrepl.inkernel import walker
from gradrepl.inkernel.brief_calls import BriefCalls
from gradrepl.inkernel.call_parts import (
    Binder,
    as_list,
    binder,
    compiling_check,
    describe_unnamed,
    name_or,
    start_node,
)
from gradrepl.inkernel.call_sites import CallSites
from gradrepl.inkernel.cell_calls import DESCRIBED_IN_FULL, CellCalls
from gradrepl.inkernel.grad_watch import HookWatch
from gradrepl.inkernel.grads_written import GradLedger, Tracked
from gradrepl.inkernel.graph import TensorNames, no_collections
from gradrepl.inkernel.jacobian import VjpView
from gradrepl.inkernel.node_grads import GradRecorder, SavedGlances, node_grads, remember
from gradrepl.inkernel.node_order import RunRecorder, predicted_order
from gradrepl.inkernel.traced_call import TracedCall, TracedRoot
from gradrepl.inkernel.values import shape_of
from gradrepl.protocol import AUTO_NODE_LIMIT, BackwardEvent, BackwardKind, NodeGrads, NodeGradsMode, Values

MAX_NODES = 200  # graph nodes listed per event
MAX_WALK = 5000  # graph nodes visited per event
# Nodes hooked to record the order the engine runs them in; a bigger graph gets it predicted.
# Recording costs 2.5-3.5 µs a node (register, call, remove; torch 2.13, this machine), which on
# the cheapest graph (a chain of scalar multiplies, 6.5 µs a node to build and run) makes a call
# 1.7x its untraced time, and 2,000 nodes add at most ~7 ms to a call.
MAX_EXACT = AUTO_NODE_LIMIT  # --node-grads auto records the gradients of the same graphs
# --node-grads auto records the first calls of a cell (a training loop's first steps; a
# loop's 50 calls described in full would make its report five times as big), on all of them.
AUTO_NODE_CALLS = 5


class BackwardTracer:
    """Collects the backward calls of a cell (see `start_cell`)."""

    def __init__(self, names: Callable[[Any], Iterator[tuple[str, Any]]], guard: Callable[[Any], Any],
                 capture: Callable[[Any, Any], Any], render: Callable[[Any, Any], Values | None]) -> None:
        self._names = names  # torch -> (name, tensor) for every tensor the user named
        self._guard = guard  # torch -> context manager: no_grad, no subclass dispatch
        self._capture = capture  # (torch, tensor) -> a copy of what a preview shows (cheap)
        self._render = render  # (torch, capture) -> preview (and stats) as a Values record
        self.calls = CellCalls()
        self.cell: int | None = None
        self.enabled = True
        self.node_grads: NodeGradsMode = "auto"
        self.node_memory: dict[walker.NodeKey, NodeGrads] = {}  # the last recorded gradients of each node
        # Gradient health: given (torch, [(tensor, grad norm or None)]) for the grads each call wrote
        self.on_grads: Callable[[Any, list[tuple[Any, Any]]], None] | None = None
        # --nan-check: given each call's nodes (and their records when the gradients are recorded)
        self.on_node_grads: Callable[[GradRecorder, tuple[NodeGrads, ...] | None], None] | None = None
        self._installed: Any = None
        self._depth = 0
        self._ledger = GradLedger(capture)
        self._brief = BriefCalls(self._ledger.memory, self._ledger.known, self._ledger.norms, capture,
                                 self.calls.graph_number, predicted_order, names)
        self._sites: CallSites | None = None

    def start_cell(self, execution_count: int | None) -> None:
        self.calls.start()
        self.cell = execution_count
        self._ledger.known.clear()
        self._brief.start_cell()
        self._ledger.memory.refresh()

    @property
    def events(self) -> list[TracedCall]:
        """The calls kept of this cell (the first and the last ones), in order."""
        return [call for call, _ in self.calls.kept()]

    # ------------------------------------------------------------ wiring

    def install(self, torch: Any) -> None:
        """Wrap torch.autograd.backward and torch.autograd.grad (once per torch module)."""
        if self._installed is torch:
            return
        if self._sites is None or not self._sites.serves(torch):
            self._sites = CallSites(torch)
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
        bind = binder(inspect.signature(original))
        tracer = self
        compiling = compiling_check(torch)

        @functools.wraps(original)
        def traced(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # read by IPython's tracebacks and by errors.py
            if not tracer.enabled or tracer._depth or compiling():
                return original(*args, **kwargs)
            tracer._depth += 1
            try:
                call = TracedCall(kind, tracer.cell)
                try:
                    caller = sys._getframe(1)
                    call.expression = tracer._sites.root_expression(caller) if tracer._sites else None
                except Exception:
                    pass
                if tracer.calls.in_full():
                    if tracer.node_grads == "off":
                        return tracer._traced_call(torch, call, original, bind, args, kwargs)
                    with no_collections():  # a record for every node, no cycles among them (graph.py)
                        return tracer._traced_call(torch, call, original, bind, args, kwargs)
                return tracer._brief_call(torch, call, original, bind, args, kwargs)
            finally:
                tracer._depth -= 1

        traced.__gradrepl_original__ = original  # type: ignore[attr-defined]
        return traced

    # ------------------------------------------------------------ one call, in full

    def _traced_call(self, torch: Any, call: TracedCall, original: Callable[..., Any], bind: Binder,
                     args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        kind = call.kind
        starts: list[Any] = []
        walked: walker.Walk | None = None
        tracked: dict[int, Tracked] = {}
        view: VjpView | None = None
        recorder: RunRecorder | None = None
        hooks: HookWatch | None = None
        result: Any = None
        names: dict[int, str] = {}
        named: list[tuple[str, Any]] | None = None
        try:
            try:
                arguments = bind(args, kwargs)
                names, retaining, named = self._name_map(torch)
                starts, walked, tracked, leaves = self._describe_call(torch, kind, arguments, call, names, retaining)
                view = self._begin_vjp(torch, kind, arguments, call, tracked, names)
                watched = [(t.name, t.tensor) for t in tracked.values() if not t.retained] if kind == "backward" else [
                    (name_or(names, leaf), leaf) for leaf in leaves]
                hooks = HookWatch(torch, self._guard, [*watched, *self._in_graph(retaining, walked, hooked=True)])
            except BaseException as exc:
                call.notes.append(f"call not described: {type(exc).__name__}: {exc}"[:200])
            # Hooked last: computing J calls the nodes directly, which must not count as runs.
            recorder = self._recorder(torch, walked, call, named)
            result = original(*args, **kwargs)
        except BaseException as exc:
            call.error = f"{type(exc).__name__}: {exc}"[:2000]
            raise
        finally:
            if recorder is not None:
                recorder.stop()
            if hooks:
                hooks.stop()
                call.hooks = hooks.effects()
            self._finish(torch, call, starts, walked, recorder, tracked, result if kind == "grad" else None)
            self.calls.add(call)
        if view is not None:
            try:
                with self._guard(torch):
                    view.finish(torch, as_list(result) if kind == "grad" else None)
            except Exception as exc:
                call.notes.append(f"vᵀ·J not compared: {type(exc).__name__}: {exc}"[:200])
        return result

    def _recorder(self, torch: Any, walked: walker.Walk | None, call: TracedCall,
                  named: list[tuple[str, Any]] | None) -> RunRecorder | None:
        """Hooks that record the order the nodes run in, and with --node-grads what each was
        given and passed on (`named`: the user's tensors, as _name_map found them); None when
        the order is predicted instead."""
        if walked is None:
            return None
        call.node_grads_note = self._node_grads_refused(walked)
        if call.node_grads_note is not None:
            checker = self._nan_checker(torch, walked)
            if checker is not None:
                return checker
        if call.node_grads_note is None:
            try:
                with self._guard(torch):
                    tensor_names = TensorNames(named if named is not None else self._names(torch))
                    saved = SavedGlances(torch, walked, tensor_names)
                recorder = GradRecorder(torch, walked, self._guard)
                recorder.names, recorder.saved = tensor_names, saved
                return recorder
            except Exception as exc:
                call.node_grads_note = f"not recorded: {type(exc).__name__}: {exc}"[:200]
        if walked.cut or len(walked) > MAX_EXACT:
            return None
        try:
            return RunRecorder(walked)
        except Exception as exc:
            call.notes.append(f"node order predicted: a node took no hook ({type(exc).__name__}: {exc})"[:200])
            return None

    def _nan_checker(self, torch: Any, walked: walker.Walk | None) -> GradRecorder | None:
        """With --nan-check, hooks on every node of a call whose gradients are not recorded that
        copy only what a node was given and passed on when either is not finite."""
        if self.on_node_grads is None or walked is None or walked.cut:
            return None
        try:
            checker = GradRecorder(torch, walked, self._guard, check_only=True)
        except Exception:
            return None
        names: list[TensorNames] = []

        def name_of(t: Any) -> str | None:  # the namespace read only for a birth's saved tensors
            if not names:
                names.append(TensorNames(self._names(torch)))
            return names[0].of(t)

        checker.name_of = name_of
        return checker

    def _checked(self, torch: Any, checker: GradRecorder, call: TracedCall) -> None:
        """A check-only recorder's findings to --nan-check, once the call is over."""
        try:
            if call.error:
                checker.failed()
            if self.on_node_grads is not None:
                with self._guard(torch):
                    self.on_node_grads(checker, None)
        except Exception as exc:
            call.notes.append(f"gradients not checked: {type(exc).__name__}: {exc}"[:200])

    def _node_grads_refused(self, walked: walker.Walk) -> str | None:
        """Why this call's node gradients are not recorded, or None."""
        if self.node_grads == "off":
            return "not recorded: --node-grads off"
        if walked.cut:
            return f"not recorded: the graph has more than {MAX_WALK:,} nodes"
        if self.node_grads == "auto" and len(walked) > MAX_EXACT:
            return (f"not recorded: the graph has {len(walked):,} nodes, over the {MAX_EXACT:,} of "
                    f"--node-grads auto (--node-grads on records up to {MAX_WALK:,})")
        if self.node_grads == "auto" and self.calls.count >= AUTO_NODE_CALLS:
            return (f"not recorded: --node-grads auto records a cell's first {AUTO_NODE_CALLS} calls "
                    f"(--node-grads on records its first {DESCRIBED_IN_FULL})")
        return None

    def _begin_vjp(self, torch: Any, kind: str, arguments: dict[str, Any], call: TracedCall,
                   tracked: dict[int, Tracked], names: dict[int, str]) -> VjpView | None:
        """J and vᵀ·J for a call with one non-scalar root and its v, before the call frees the graph."""
        roots = as_list(arguments.get("tensors" if kind == "backward" else "outputs"))
        gradients = as_list(arguments.get("grad_tensors" if kind == "backward" else "grad_outputs"))
        if len(roots) != 1 or len(gradients) != 1 or gradients[0] is None or roots[0].numel() <= 1:
            return None
        if getattr(roots[0], "grad_fn", None) is None:
            return None  # a backward from a leaf: J is the identity
        if kind == "backward":
            leaves = [(t.name, t.tensor) for t in tracked.values() if not t.retained]
        else:
            inputs = as_list(arguments.get("inputs"))
            if not all(getattr(t, "is_leaf", False) for t in inputs):
                call.vjp = VjpView.noted("some inputs are not leaves: the view covers leaves only")
                return None
            leaves = [(name_or(names, t), t) for t in inputs]
        root_name = call.expression or (call.roots[0].name or call.roots[0].description) if call.roots else "root"
        with self._guard(torch):
            call.vjp = VjpView.begin(torch, roots[0], root_name, gradients[0], leaves)
        return call.vjp

    def _describe_call(self, torch: Any, kind: str, arguments: dict[str, Any], call: TracedCall,
                       names: dict[int, str], retaining: list[tuple[str, Any]],
                       ) -> tuple[list[Any], walker.Walk, dict[int, Tracked], list[Any]]:
        """Fills in what the call was given; returns the nodes it starts at, the graph's walk, each
        tensor whose grad it may write (with that grad as it was) and the graph's leaves."""
        roots = as_list(arguments.get("tensors" if kind == "backward" else "outputs"))
        inputs = arguments.get("inputs")
        with self._guard(torch):
            self._describe_arguments(torch, kind, arguments, call, lambda t: names.get(id(t)), roots)
            starts = [start_node(torch, t) for t in roots]
            walked = walker.walk(starts, MAX_WALK)
            call.graph = self.calls.graph_number((tuple(map(type, walked.nodes)), walked.cut))
            graph_leaves = walked.leaves()
            tracked: dict[int, Tracked] = {}
            if kind == "backward":
                # Leaves the call may write into: those of the graph, or the ones named in `inputs`.
                if inputs is not None:
                    leaves = [t for t in as_list(inputs) if getattr(t, "is_leaf", False)]
                else:
                    leaves = list(graph_leaves)
                    if walked.cut:  # the leaves past the walk's end: the named ones
                        leaves += self._named_leaves(torch, {id(leaf) for leaf in leaves})
                for leaf in leaves:
                    self._ledger.track(torch, tracked, call, leaf, name_or(names, leaf))
                if inputs is None:
                    for name, tensor in self._in_graph(retaining, walked, hooked=False):
                        self._ledger.track(torch, tracked, call, tensor, name, retained=True)
        return starts, walked, tracked, graph_leaves

    def _describe_arguments(self, torch: Any, kind: str, arguments: dict[str, Any], call: TracedCall,
                            name_of: Callable[[Any], str | None], roots: list[Any]) -> None:
        gradients = arguments.get("grad_tensors" if kind == "backward" else "grad_outputs")
        inputs = arguments.get("inputs")
        call.roots = [self._root(torch, t, name_of(t)) for t in roots]
        call.gradient = None if gradients is None else [
            None if g is None else self._capture(torch, g) for g in as_list(gradients)
        ]
        retain_graph = arguments.get("retain_graph")
        call.retain_graph = None if retain_graph is None else bool(retain_graph)
        call.create_graph = bool(arguments.get("create_graph", False))
        call.inputs = None if inputs is None else [name_of(t) or describe_unnamed(t) for t in as_list(inputs)]

    def _finish(self, torch: Any, call: TracedCall, starts: list[Any], walked: walker.Walk | None,
                recorder: RunRecorder | None, tracked: dict[int, Tracked], result: Any) -> None:
        try:
            if isinstance(recorder, GradRecorder) and recorder.check_only:
                self._checked(torch, recorder, call)
            elif isinstance(recorder, GradRecorder):
                if call.error:
                    recorder.failed()
                with self._guard(torch), no_collections():  # thousands of small records, no cycles
                    names = recorder.names or TensorNames(())
                    call.node_grads = node_grads(torch, recorder, lambda leaf: names.of(leaf) or describe_unnamed(leaf))
                    remember(self.node_memory, recorder, call.node_grads)
                    if self.on_node_grads is not None:
                        self.on_node_grads(recorder, call.node_grads)
                if call.error:
                    call.node_grads_note = "the call failed: these are the nodes that finished before the error"
            if recorder is not None:
                call.nodes, call.nodes_total, call.node_order = recorder.node_names(MAX_NODES), len(recorder.ran), "exact"
            elif walked is not None:
                call.nodes_total = len(walked)
                # A call that failed ran some of them, which ones is not known: none are listed.
                call.nodes = [] if call.error else predicted_order(walked, starts, MAX_NODES)
            call.walk_cut = walked is not None and walked.cut
            with self._guard(torch):
                changed, written = self._ledger.written(torch, call, tracked)
                if recorder is not None and len(changed) > 1:  # in the order the engine wrote them
                    order_of = recorder.accumulation_order()
                    order = sorted(range(len(changed)), key=lambda at: order_of.get(written[at], len(order_of)))
                    changed, written = [changed[at] for at in order], [written[at] for at in order]
                call.leaves = changed
                self._ledger.returned(torch, call, result)
                if self.on_grads is not None and changed:
                    self.on_grads(torch, [(tracked[at].tensor, change.norm) for at, change in zip(written, changed, strict=True)])
        except BaseException as exc:
            call.notes.append(f"result not described: {type(exc).__name__}: {exc}"[:200])

    # ------------------------------------------------------------ one call, in brief

    def _brief_call(self, torch: Any, call: TracedCall, original: Callable[..., Any], bind: Binder,
                    args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A call past the cell's first DESCRIBED_IN_FULL (brief_calls.py)."""
        __tracebackhide__ = True
        call.brief = True
        call.node_grads_note = f"not recorded: a cell's calls past its first {DESCRIBED_IN_FULL} are described in brief"
        walked: walker.Walk | None = None
        starts: list[Any] = []
        leaves: list[Any] = []
        keys: list[Any] = []
        resets: list[Any] = []
        first_of_group = True
        result: Any = None
        checker: GradRecorder | None = None
        try:
            try:
                # Attribute reads only (no guard needed), but for copying values when a group ends.
                walked, starts, leaves, keys, resets = self._brief.before(torch, call, bind(args, kwargs), MAX_WALK)
                call.step = self.calls.count + 1
                first_of_group = not self.calls.continues_group(call)
                if first_of_group:
                    with self._guard(torch):
                        self._brief.keep_values(torch)  # the group before ends: its last call's values
            except BaseException as exc:
                call.notes.append(f"call not described: {type(exc).__name__}: {exc}"[:200])
            checker = self._nan_checker(torch, walked)
            result = original(*args, **kwargs)
        except BaseException as exc:
            call.error = f"{type(exc).__name__}: {exc}"[:2000]
            raise
        finally:
            if checker is not None:
                checker.stop()
                self._checked(torch, checker, call)
            try:
                with self._guard(torch):
                    self._brief.after(torch, call, walked, starts, leaves, keys, resets,
                                      result if call.kind == "grad" else None, MAX_NODES, first_of_group)
                    if self.on_grads is not None and call.writes is not None:
                        self.on_grads(torch, [(tensor, norm) for tensor, _, norm in call.writes.written])
            except BaseException as exc:
                call.notes.append(f"result not described: {type(exc).__name__}: {exc}"[:200])
            self.calls.add(call)
        return result

    # ------------------------------------------------------------ helpers

    def _name_map(self, torch: Any) -> tuple[dict[int, str], list[tuple[str, Any]], list[tuple[str, Any]]]:
        """id() of each named tensor -> its first name; the named non-leaves that retain their
        grad or have hooks of their own (their grads or hooks are reported too); and every
        (name, tensor) found, for node gradients' names (one walk of the namespace a call)."""
        names: dict[int, str] = {}
        retaining: list[tuple[str, Any]] = []
        named = list(self._names(torch))
        for name, tensor in named:
            if id(tensor) in names:
                continue
            names[id(tensor)] = name
            if tensor.grad_fn is not None and (tensor.retains_grad or getattr(tensor, "_backward_hooks", None)):
                retaining.append((name, tensor))
        return names, retaining, named

    @staticmethod
    def _in_graph(retaining: list[tuple[str, Any]], walked: walker.Walk | None, hooked: bool) -> list[tuple[str, Any]]:
        """Those of the named non-leaves that retain their grad (or, `hooked`, that have hooks)
        whose nodes are in the walked graph."""
        if walked is None:
            return []
        return [(name, t) for name, t in retaining if id(t.grad_fn) in walked.position
                and (getattr(t, "_backward_hooks", None) if hooked else t.retains_grad)]

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
        kept = self.calls.kept()
        with self._guard(torch):
            self._brief.keep_values(torch)
            for call, _ in kept:
                if call.writes is not None:
                    call.writes.named(call, lambda t: self._brief.name_of(torch, t))

        def values(capture: Any) -> Values | None:
            if capture is None:
                return None
            try:
                return self._render(torch, capture)
            except Exception as exc:
                return Values(None, False, None, f"{type(exc).__name__}: {exc}"[:200])

        return [call.record(values, call.cell if cell is None else cell, runs) for call, runs in kept]

    def _root(self, torch: Any, t: Any, name: str | None) -> TracedRoot:
        grad_fn = getattr(t, "grad_fn", None)
        return TracedRoot(name, describe_unnamed(t), walker.node_name(grad_fn) if grad_fn is not None else None,
                          tuple(shape_of(t)), self._capture(torch, t))


def own_codes() -> frozenset[CodeType]:
    """The code of the tracer's frames, which sit between a user's call and torch's in a
    traceback (errors.hide_frames_from_tracebacks takes them out)."""
    wrapper = [code for code in BackwardTracer._wrap.__code__.co_consts
               if isinstance(code, CodeType) and code.co_name == "traced"]
    return frozenset([BackwardTracer._traced_call.__code__, BackwardTracer._brief_call.__code__, *wrapper])

