"""What every node of a backward call received and passed on, recorded as the engine runs it.

`GradRecorder` is the RunRecorder of a call whose node gradients are recorded: instead of a
pre-hook noting each node, a post-hook (`Node.register_hook`, which torch calls after the
node ran, with what it passed on and what it was given) notes the node and copies both
sides; it returns None, so the gradients go on unchanged. A gradient of at most
GLANCE_STATS_LIMIT elements on the CPU is copied as a list (about a microsecond); a bigger
one is described at once (a preview of its corners and its stats, bounded in cost), so no
gradient is held past its node. Before the call, the tensors each node saved are glanced at
(after it, a graph not retained has freed them). Never imports torch.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable
from typing import Any

from gradrepl.inkernel import walker
from gradrepl.inkernel.glances import GLANCE_STATS_LIMIT, capture_glance, render_capture, values_record
from gradrepl.inkernel.graph import MAX_SAVED_VALUE, TensorNames, saved_attributes
from gradrepl.inkernel.node_order import RunRecorder, engine_priority
from gradrepl.inkernel.values import describe_data, describe_list, plain_value, torch_stats, unpreviewed_label
from gradrepl.protocol.node_grads import NOT_PASSED, GradPreview, NodeGrads, SavedValue
from gradrepl.protocol.tensors import Stats, Values

# A gradient as the hook copied it: (shape, dtype, flat values) when small, (shape, dtype,
# description) when described at once, or (shape, dtype, note) when it cannot be read.
Copied = tuple[tuple[int, ...], str, Any, str] | None


def copy_grad(torch: Any, t: Any) -> Copied:
    """What a post-hook keeps of one gradient, never raising."""
    if t is None:
        return None
    try:
        shape = tuple(int(size) for size in t.shape)
        dtype = str(t.dtype).removeprefix("torch.")
        label = unpreviewed_label(torch, t)
        if label is not None:
            return shape, dtype, label, "note"
        if t.numel() <= GLANCE_STATS_LIMIT and t.is_cpu:
            flat = t.reshape(-1).tolist()
            return shape, dtype, flat, "list"
        values = t.detach()
        if values.is_floating_point() and values.is_cpu and not values.is_quantized:
            return shape, dtype, (capture_glance(torch, values), quick_stats(torch, values)), "glanced"
        return shape, dtype, describe_data(torch, values), "described"
    except Exception as exc:
        return (), "", f"not read: {type(exc).__name__}: {exc}"[:200], "note"


def quick_stats(torch: Any, t: Any) -> Stats:
    """Exact stats of a float tensor in two passes (norm; min and max): nan and inf show in
    them, and are counted only then."""
    norm, low, high = torch.stack([torch.linalg.vector_norm(t), *torch.aminmax(t)]).tolist()
    numel = t.numel()
    if math.isfinite(norm) and math.isfinite(low) and math.isfinite(high):
        return Stats(norm, low, high, 0, 0, False, numel)
    return Stats.from_json(torch_stats(torch, t, numel))


def preview_of(torch: Any, copied: Copied) -> GradPreview | None:
    if copied is None:
        return None
    shape, dtype, data, kind = copied
    if kind == "list" and len(data) == 1 and type(data[0]) is float:  # one number (most chains' grads): no stats
        nested: Any = data[0] if math.isfinite(data[0]) else plain_value(data[0])
        for _ in shape:
            nested = (nested,)
        return GradPreview(shape, dtype, Values(nested, False, None))
    if kind == "list":
        values = values_record(describe_list(data, list(shape), dtype == "bool"))
    elif kind == "corner":
        values = render_capture(torch, data) or Values(None, False, None, "not read")
    elif kind == "glanced":
        capture, stats = data
        corner = render_capture(torch, capture) or Values(None, False, None, "not read")
        values = Values(corner.preview, corner.truncated, stats, corner.note)
    elif kind == "described":
        values = values_record(data) if data is not None else Values(None, False, None, "on the meta device")
    else:
        values = Values(None, False, None, str(data))
    return GradPreview(shape, dtype, values)


class GradRecorder(RunRecorder):
    """A RunRecorder whose hooks are post-hooks: each notes its node once the engine has run it
    and copies what the node was given and passed on; `stop()` removes them. (One hook a node,
    not a pre-hook besides: registering a hook costs as much as copying a small gradient.) A
    call that fails stops at a node that ran no post-hook: `failed` adds the node the engine
    was running, the one of the nodes ready to run that it runs first (node_order's rule)."""

    def __init__(self, torch: Any, walked: walker.Walk, guard: Callable[[Any], Any], check_only: bool = False) -> None:
        super().__init__(walked, hooked=False)
        # walk index -> (in, out); with `check_only` (--nan-check on a call whose gradients are
        # not recorded) only a node that was given or passed on a non-finite gradient is copied.
        self.copies: dict[int, tuple[tuple[Copied, ...], tuple[Copied, ...]]] = {}
        self.check_only = check_only
        self.names: TensorNames | None = None
        self.saved: SavedGlances | None = None
        # Checking only: what a node that met a non-finite gradient had saved, read in its
        # post-hook (before the engine frees it): walk index -> (name, tensor, copy).
        self.saved_seen: dict[int, list[tuple[str, Any, Copied]]] = {}
        self.name_of: Callable[[Any], str | None] = lambda t: None  # the user's name, asked only then
        copies = self.copies
        saved_seen = self.saved_seen
        note = self.ran.append
        # What a node passed on is, most often, the very tensor the next node is given: copied
        # once. By id, checked to be the same object (weakly held) at the same version. (A
        # one-element gradient, a chain's, is copied again: quicker than the check.)
        seen: dict[int, tuple[Any, int, Copied]] = {}
        tensor_type, strided, dtype_names = torch.Tensor, torch.strided, _DTYPE_NAMES

        def copied(t: Any) -> Copied:
            if t is None:
                return None
            try:  # never raises into the engine: the user's call goes on whatever a copy meets
                if type(t) is tensor_type and t.is_cpu and t.numel() == 1 and t.layout == strided and not t.is_nested:
                    return tuple(t.shape), dtype_names.get(t.dtype) or _dtype_name(t.dtype), [t.item()], "list"
                known = seen.get(id(t))
                if known is not None and known[0]() is t and known[1] == t._version:
                    return known[2]
                copy = quick_copy(torch, t, guard)
            except Exception as exc:
                return (), "", f"not read: {type(exc).__name__}: {exc}"[:200], "note"
            try:
                seen[id(t)] = (weakref.ref(t), t._version, copy)
            except TypeError:
                pass
            return copy

        isfinite = torch.isfinite

        def all_finite(grads: Any) -> bool:
            try:
                with guard(torch):
                    return all(g is None or not (g.is_floating_point() or g.is_complex()) or bool(isfinite(g).all())
                               for g in grads)
            except Exception:
                return True

        try:
            for index, node in enumerate(walked.nodes):
                def hook(grad_inputs: Any, grad_outputs: Any, index: int = index) -> None:
                    note(index)
                    if check_only and all_finite(grad_inputs) and all_finite(grad_outputs):
                        return
                    copies[index] = (tuple(map(copied, grad_outputs)), tuple(map(copied, grad_inputs)))
                    if check_only:
                        saved_seen[index] = saved_now(torch, walked.nodes[index], guard)

                self._handles.append(node.register_hook(hook))
        except BaseException:
            self.stop()
            raise

    def finished(self) -> list[int]:
        """Walk indices of the nodes that ran to the end (a post-hook copied them), in engine order."""
        return [index for index in self.ran if index in self.copies]

    def failed(self) -> None:
        """After a call that raised: the node it raised in noted as reached (see the class).
        When no node finished, the engine may not have started (a non-scalar root without a
        gradient fails before it): none is."""
        walked = self.walked
        if not self.ran:
            return
        done = set(self.ran)
        waiting = [0] * len(walked.nodes)
        for index in range(len(walked.nodes)):
            if index in done:
                continue
            for child, _ in walked.nodes[index].next_functions:
                at = walked.position.get(id(child), -1) if child is not None else -1
                if at >= 0:
                    waiting[at] += 1
        ready = [index for index in range(len(walked.nodes)) if index not in done and not waiting[index]]
        if ready:
            self.ran.append(max(ready, key=lambda index: engine_priority(walked.nodes[index])))


def saved_now(torch: Any, node: Any, guard: Callable[[Any], Any]) -> list[tuple[str, Any, Copied]]:
    """The tensors a node saved, copied while it still holds them (never raising)."""
    found: list[tuple[str, Any, Copied]] = []
    try:
        for attr, name in saved_attributes(node):
            value = getattr(node, attr, None)
            if isinstance(value, torch.Tensor):
                found.append((name, value, quick_copy(torch, value, guard)))
    except Exception:
        pass
    return found


def quick_copy(torch: Any, t: Any, guard: Callable[[Any], Any] | None = None, stats: bool = True) -> Copied:
    """copy_grad, quicker for the most common gradient, a small plain CPU tensor (a list of
    its values, no guard needed); without `stats`, a big one keeps its corners only."""
    if type(t) is torch.Tensor and t.is_cpu and t.layout == torch.strided and not t.is_nested:
        numel = t.numel()
        if numel == 1:  # a chain's gradient, most often: item() is ten times quicker than tolist()
            return tuple(t.shape), _dtype_name(t.dtype), [t.item()], "list"
        if numel <= GLANCE_STATS_LIMIT:
            return tuple(t.shape), _dtype_name(t.dtype), t.reshape(-1).tolist(), "list"
    with guard(torch) if guard is not None else contextlib.nullcontext():
        if not stats and t.layout == torch.strided and not t.is_nested and not t.is_meta:
            return tuple(int(size) for size in t.shape), _dtype_name(t.dtype), capture_glance(torch, t), "corner"
        return copy_grad(torch, t)


_DTYPE_NAMES: dict[Any, str] = {}


def _dtype_name(dtype: Any) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


class SavedGlances:
    """The tensors (and other values) each walked node saved for its backward, copied before
    the call runs: by walk index, (name, user's name, copy, note) and (name, text) lists."""

    def __init__(self, torch: Any, walked: walker.Walk, names: TensorNames) -> None:
        self.tensors: dict[int, list[tuple[str, str | None, Copied, str | None]]] = {}
        self.values: dict[int, tuple[tuple[str, str], ...]] = {}
        tensor = torch.Tensor
        for index, node in enumerate(walked.nodes):
            attributes = saved_attributes(node)
            if not attributes:
                continue
            tensors: list[tuple[str, str | None, Copied, str | None]] = []
            values: list[tuple[str, str]] = []
            for attr, name in attributes:
                try:
                    value = getattr(node, attr)
                    if isinstance(value, tensor):
                        if value.dim() == 0 and type(value) is tensor and value.is_cpu and id(value) not in names.by_id:
                            values.append((name, repr(value.item())))  # a number from the code (`h * 1.01`)
                        else:
                            tensors.append((name, names.of(value), quick_copy(torch, value, stats=False), None))
                    elif value is not None:
                        text = repr(value) if isinstance(value, (int, float, bool, tuple, list, str)) else type(value).__name__
                        values.append((name, text if len(text) <= MAX_SAVED_VALUE else text[: MAX_SAVED_VALUE - 1] + "…"))
                except Exception as exc:
                    message = str(exc).splitlines()[0] if str(exc) else ""
                    tensors.append((name, None, None, f"{type(exc).__name__}: {message}"[:200]))
            if tensors:
                self.tensors[index] = tensors
            if values:
                self.values[index] = tuple(values)

    def saved(self, preview: Callable[[Copied], GradPreview | None], index: int) -> tuple[SavedValue, ...]:
        return tuple([SavedValue(name, user_name, preview(copy), note)
                      for name, user_name, copy, note in self.tensors.get(index, ())])


def node_grads(torch: Any, recorder: GradRecorder, leaf_name: Callable[[Any], str]) -> tuple[NodeGrads, ...]:
    """The recorded nodes as protocol records, in engine order."""
    names = recorder.names or TensorNames(())
    saved = recorder.saved
    nodes = recorder.walked.nodes
    position = recorder.walked.position
    finished = recorder.finished()
    engine_index = {walk_index: at for at, walk_index in enumerate(finished)}
    rendered: dict[int, GradPreview | None] = {}  # by id of the copy: one copy is often two nodes' gradient
    numbers: dict[tuple[Any, ...], GradPreview | None] = {}  # one-element copies by value: a chain passes each on

    def preview(copied: Copied) -> GradPreview | None:
        if copied is None:
            return None
        shape, dtype, data, kind = copied
        if kind == "list" and len(data) == 1:
            number = data[0]
            key = (shape, dtype, number if number else repr(number))  # -0.0 shows apart from 0.0
            known = numbers.get(key)
            if known is None:
                known = numbers[key] = preview_of(torch, copied)
            return known
        known = rendered.get(id(copied))
        if known is None:
            known = rendered[id(copied)] = preview_of(torch, copied)
        return known

    records = []
    copies = recorder.copies
    by_grad_fn = names.by_grad_fn
    saved_tensors = saved.tensors if saved is not None else {}
    saved_values = saved.values if saved is not None else {}
    for walk_index in finished:
        grads_in, grads_out = copies[walk_index]
        node = nodes[walk_index]
        nexts = tuple([NOT_PASSED if child is None else engine_index.get(position.get(id(child), -1), NOT_PASSED)
                       for child, _ in node.next_functions])
        variable = walker.accumulated_leaf(node)
        records.append(NodeGrads(
            walker.node_name(node), tuple(map(preview, grads_in)), tuple(map(preview, grads_out)),
            nexts, by_grad_fn.get(id(node)), None if variable is None else leaf_name(variable),
            saved.saved(preview, walk_index) if walk_index in saved_tensors else (),  # type: ignore[union-attr]
            saved_values.get(walk_index, ()),
        ))
    return tuple(records)


MEMORY_LIMIT = 50_000  # nodes whose last gradients are remembered for the graph view


def remember(memory: dict[walker.NodeKey, NodeGrads], recorder: GradRecorder, records: tuple[NodeGrads, ...]) -> None:
    """Each recorded node's gradients, by node, for the graph of a tensor asked for later."""
    if len(memory) + len(records) > MEMORY_LIMIT:
        memory.clear()
    nodes = recorder.walked.nodes
    finished = recorder.finished()
    for walk_index, record in zip(finished, records, strict=True):
        memory[walker.node_key(nodes[walk_index])] = record
