"""The probe: runs inside the kernel and turns torch objects into plain data.

With backward_trace.py and graph.py, which it calls, this is the only gradrepl code that
touches torch, and it never imports it: torch is
looked up in sys.modules, so a namespace without torch costs nothing and the kernel
behaves exactly as Jupyter's until the user imports torch.

After every (non-silent) cell the probe sends one `comm_msg` on IOPub, parented to the
cell's execute_request, carrying a CellReport: the snapshot of every named tensor, the
cell's error frames mapped to lines of the user's file, and the backward events.
Nothing it defines lands in the user's namespace. It never raises into the user's cell.
Between cells it answers a front end's requests on the same comm (a tensor's graph).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import sys
import weakref
import traceback
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

from gradrepl.inkernel.tracer import BackwardTracer, TorchImportWatcher
from gradrepl.inkernel.graph import graph_of
from gradrepl.protocol import BACKWARD_LOG_ENV, COMM_TARGET, ORIGIN_KEY, apply_delta

MAX_TENSORS = 2000
MAX_CONTAINER_ITEMS = 64
PREVIEW_EDGE = 3
PYTHON_STATS_LIMIT = 4096
FULL_STATS_LIMIT = 1 << 20
SAMPLE_SIZE = 1 << 16

_IPYTHON_CACHE_NAME = re.compile(r"^(_+|_\d+|_i+\d*|_[oid]h|__\w+__)$")


# ---------------------------------------------------------------- tensor data


def _numbers_from(values: list[Any]) -> list[float]:
    numbers: list[float] = []
    for value in values:
        if isinstance(value, complex):
            numbers.append(abs(value))
        else:
            numbers.append(float(value))
    return numbers


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, complex):
        return f"{value.real:g}{value.imag:+g}j"
    return value


def _python_stats(flat: list[Any], numel: int) -> dict[str, Any]:
    numbers = _numbers_from(flat)
    nan = sum(1 for x in numbers if math.isnan(x))
    inf = sum(1 for x in numbers if math.isinf(x))
    finite = [x for x in numbers if math.isfinite(x)]
    return {
        "norm": _plain(math.sqrt(sum(x * x for x in numbers))) if numbers else 0.0,
        "min": min(finite) if finite else None,
        "max": max(finite) if finite else None,
        "nan": nan,
        "inf": inf,
        "sampled": False,
        "sample_size": numel,
    }


def _strided_sample(t: Any, limit: int) -> Any:
    """A view of at most `limit` elements spread over the whole tensor (no copy)."""
    steps = [1] * t.dim()
    sizes = list(t.shape)

    def kept(dim: int) -> int:
        return -(-sizes[dim] // steps[dim])

    while math.prod(kept(d) for d in range(len(sizes))) > limit:
        widest = max(range(len(sizes)), key=kept)
        steps[widest] *= 2
    return t[tuple(slice(None, None, s) for s in steps)]


def _torch_stats(torch: Any, t: Any, numel: int) -> dict[str, Any]:
    sampled = numel > FULL_STATS_LIMIT
    part = _strided_sample(t, SAMPLE_SIZE) if sampled else t
    values = part.to(torch.complex128 if part.is_complex() else torch.float64)
    if values.is_complex():
        values = values.abs()
    values = values.reshape(-1)
    n = values.numel()
    nan_mask = torch.isnan(values)
    inf_mask = torch.isinf(values)
    finite = values[~(nan_mask | inf_mask)]
    square_sum = float(values.square().sum())
    norm = math.sqrt(square_sum * numel / n) if sampled and n else math.sqrt(square_sum)
    return {
        "norm": _plain(norm),
        "min": float(finite.min()) if finite.numel() else None,
        "max": float(finite.max()) if finite.numel() else None,
        "nan": int(nan_mask.sum()),
        "inf": int(inf_mask.sum()),
        "sampled": sampled,
        "sample_size": n,
    }


def _reshape(flat: list[Any], shape: list[int]) -> Any:
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _insert_gaps(nested: Any, gaps: list[int | None]) -> Any:
    """Put a "…" marker where each cut dimension lost its middle."""
    if not gaps or not isinstance(nested, list):
        return nested
    inner = [_insert_gaps(item, gaps[1:]) for item in nested]
    gap = gaps[0]
    if gap is not None:
        inner = inner[:gap] + ["…"] + inner[gap:]
    return inner


def _preview_of_large(torch: Any, t: Any) -> tuple[Any, bool]:
    """First and last PREVIEW_EDGE entries along every dimension."""
    corner, gaps, kept_shape = _corner(torch, t)
    return _corner_preview(corner, gaps, kept_shape), any(g is not None for g in gaps)


def _corner(torch: Any, t: Any) -> tuple[Any, list[int | None], list[int]]:
    """The entries a preview shows, copied out one dimension at a time with index_select
    (the index tensors are made once per size)."""
    gaps: list[int | None] = []
    kept_shape: list[int] = []
    corner = t
    for dim, size in enumerate(t.shape):
        if size > 2 * PREVIEW_EDGE:
            corner = corner.index_select(dim, _edge_index(torch, size))
            gaps.append(PREVIEW_EDGE)
            kept_shape.append(2 * PREVIEW_EDGE)
        else:
            gaps.append(None)
            kept_shape.append(size)
    return corner, gaps, kept_shape


def _corner_preview(corner: Any, gaps: list[int | None], kept_shape: list[int]) -> Any:
    return _insert_gaps(_plain_nested(_reshape(corner.reshape(-1).tolist(), kept_shape)), gaps)


_EDGE_INDEX: dict[int, Any] = {}


def _edge_index(torch: Any, size: int) -> Any:
    index = _EDGE_INDEX.get(size)
    if index is None:
        if len(_EDGE_INDEX) > 256:
            _EDGE_INDEX.clear()
        positions = list(range(PREVIEW_EDGE)) + list(range(size - PREVIEW_EDGE, size))
        index = _EDGE_INDEX[size] = torch.tensor(positions, dtype=torch.long)
    return index


def _plain_nested(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain_nested(v) for v in value]
    return _plain(value)


class ValuesMemo:
    """Descriptions of small tensors from the last snapshot, reused while their values are
    equal. Values are compared, not `_version`: writes through `.data` do not bump it."""

    def __init__(self) -> None:
        self.previous: dict[tuple[Any, ...], tuple[list[Any], dict[str, Any]]] = {}
        self.current: dict[tuple[Any, ...], tuple[list[Any], dict[str, Any]]] = {}

        self._serials: dict[int, tuple[Any, int]] = {}
        self._next_serial = 0

    def next_snapshot(self) -> None:
        self.previous, self.current = self.current, {}

    def serial(self, t: Any) -> int:
        """A number for this tensor object, stable while it lives and never reused: the front
        end tells a tensor rebound to the same name from the same tensor changed."""
        known = self._serials.get(id(t))
        if known is not None and known[0]() is t:
            return known[1]
        self._next_serial += 1
        key = id(t)
        try:
            ref = weakref.ref(t, lambda _, key=key: self._serials.pop(key, None))
        except TypeError:
            return self._next_serial
        self._serials[key] = (ref, self._next_serial)
        return self._next_serial

    def describe_small(self, torch: Any, t: Any) -> dict[str, Any]:
        flat = t.reshape(-1).tolist()
        # `t` is a fresh detach() each time: the memory it views is what stays the same.
        key = (tuple(t.shape), t.dtype, t.data_ptr(), tuple(t.stride()))
        known = self.current.get(key) or self.previous.get(key)
        if known is None or known[0] != flat:
            known = (flat, _describe_small(torch, t, flat))
        self.current[key] = known
        return known[1]


def _describe_small(torch: Any, t: Any, flat: list[Any]) -> dict[str, Any]:
    return {
        "preview": _plain_nested(_reshape(flat, list(t.shape))),
        "truncated": False,
        "stats": _python_stats(flat, len(flat)) if flat and t.dtype != torch.bool else None,
    }


def describe_values(torch: Any, t: Any, memo: ValuesMemo | None = None) -> dict[str, Any]:
    """Preview and stats of a (detached, strided) tensor's values, bounded in cost."""
    numel = t.numel()
    if t.is_quantized:
        t = t.dequantize()
    if numel <= PYTHON_STATS_LIMIT and all(size <= 2 * PREVIEW_EDGE for size in t.shape):
        if memo is None:
            return _describe_small(torch, t, t.reshape(-1).tolist())
        return memo.describe_small(torch, t)
    preview, truncated = _preview_of_large(torch, t)
    stats: dict[str, Any] | None = None
    if numel and t.dtype != torch.bool:
        if numel <= PYTHON_STATS_LIMIT:
            flat = t.reshape(-1).tolist()
            stats = _python_stats(flat, numel)
        else:
            stats = _torch_stats(torch, t, numel)
    return {"preview": preview, "truncated": truncated, "stats": stats}


def describe_tensor(torch: Any, name: str, t: Any, memo: ValuesMemo | None = None) -> dict[str, Any]:
    """Everything the front end shows of one tensor, as plain data."""
    info: dict[str, Any] = {
        "name": name,
        "shape": list(t.shape),
        "dtype": str(t.dtype).removeprefix("torch."),
        "device": str(t.device),
        "layout": str(t.layout).removeprefix("torch."),
        "requires_grad": bool(t.requires_grad),
        "is_leaf": bool(t.is_leaf),
        "grad_fn": type(t.grad_fn).__name__ if t.grad_fn is not None else None,
        "retains_grad": bool(t.retains_grad),
        "version": int(t._version),
        "type": type(t).__name__,
        "object": memo.serial(t) if memo is not None else None,
        "data": None,
        "grad": None,
        "note": None,
    }
    try:
        info["data"] = _describe_data(torch, t, memo)
    except Exception as exc:  # odd layouts, meta tensors, user subclasses
        info["note"] = f"values not shown: {type(exc).__name__}: {exc}"[:200]
    if t.is_leaf or t.retains_grad:
        grad = t.grad
        if grad is not None:
            try:
                info["grad"] = _describe_data(torch, grad, memo)
            except Exception as exc:
                info["note"] = f"grad not shown: {type(exc).__name__}: {exc}"[:200]
    return info


GLANCE_STATS_LIMIT = 64  # elements: a glance at a tensor this small keeps all of it, stats included


class Capture:
    """What a glance needs of a tensor at one moment, copied so later in-place changes do not
    reach it; turned into plain data later (`render_capture`), off the hot path."""

    __slots__ = ("values", "gaps", "kept_shape")
    _take_index: ClassVar[dict[tuple[int, ...], Any]] = {}  # shape -> flat positions of its corner

    def __init__(self, values: Any, gaps: list[int | None] | None, kept_shape: list[int]) -> None:
        self.values = values  # the whole tensor when small (gaps None), else its corner, flattened
        self.gaps = gaps
        self.kept_shape = kept_shape

    @classmethod
    def corner_of(cls, torch: Any, values: Any) -> Capture:
        """The entries `_corner` keeps, copied by one `take` rather than an index_select per dimension."""
        shape = tuple(values.shape)
        gaps = [PREVIEW_EDGE if size > 2 * PREVIEW_EDGE else None for size in shape]
        kept_shape = [size if gap is None else 2 * PREVIEW_EDGE for size, gap in zip(shape, gaps)]
        if values.is_quantized:  # no take for these
            corner = _corner(torch, values)[0]
            return cls((corner if corner is not values else corner.clone()).reshape(-1), gaps, kept_shape)
        index = cls._take_index.get(shape)
        if index is None:
            if len(cls._take_index) > 256:
                cls._take_index.clear()
            index = torch.zeros(1, dtype=torch.long)
            for size, gap in zip(shape, gaps):
                kept = torch.arange(size) if gap is None else _edge_index(torch, size)
                index = (index[:, None] * size + kept[None, :]).reshape(-1)
            cls._take_index[shape] = index
        return cls(torch.take(values, index), gaps, kept_shape)

    def same_as(self, other: Capture | None, torch: Any) -> bool:
        return (
            other is not None and self.gaps == other.gaps and self.kept_shape == other.kept_shape
            and self.values.dtype == other.values.dtype and bool(torch.equal(self.values, other.values))
        )

    def corner_preview(self) -> Any:
        """`_corner_preview` of the values, quicker when none needs `_plain` (no nan, inf or complex)."""
        assert self.gaps is not None
        if self.values.is_complex():
            return _corner_preview(self.values, self.gaps, self.kept_shape)
        nested = self.values.tolist()
        if not math.isfinite(sum(nested)):
            return _corner_preview(self.values, self.gaps, self.kept_shape)
        for size, gap in zip(reversed(self.kept_shape), reversed(self.gaps)):
            nested = [nested[start:start + size] for start in range(0, len(nested), size)]
            if gap is not None:
                for items in nested:
                    items.insert(gap, "…")
        return nested[0]


def capture_glance(torch: Any, t: Any) -> Capture | None:
    """A copy of the part of `t` a glance shows: cheap enough for every backward call."""
    if t.layout != torch.strided:
        raise ValueError(f"{t.layout} layout")
    if t.is_meta:
        return None
    # Every path below copies; the copy records no graph when grad mode is off (as under _guarded).
    values = t.detach() if t.requires_grad and torch.is_grad_enabled() else t
    if values.numel() <= GLANCE_STATS_LIMIT:
        return Capture(values.clone() if values.is_cpu else values.cpu(), None, list(values.shape))
    if not values.is_cpu:
        values = _strided_sample(values, SAMPLE_SIZE).cpu() if values.numel() > SAMPLE_SIZE else values.cpu()
    return Capture.corner_of(torch, values)


def render_capture(torch: Any, capture: Capture | None) -> dict[str, Any] | None:
    if capture is None:
        return None
    values = capture.values
    if capture.gaps is None:
        if values.dim() <= 1 and values.numel() <= 2 * PREVIEW_EDGE and not values.is_quantized:
            # describe_values' small case (a scalar root, mostly) without its reshape
            return _describe_small(torch, values, values.tolist() if values.dim() else [values.tolist()])
        return describe_values(torch, values)
    return {"preview": capture.corner_preview(), "truncated": any(g is not None for g in capture.gaps), "stats": None}


def _describe_data(torch: Any, t: Any, memo: ValuesMemo | None) -> dict[str, Any] | None:
    if t.layout != torch.strided:
        raise ValueError(f"{t.layout} layout")
    if t.device.type == "meta":
        return None
    values = t.detach()
    if values.device.type != "cpu":
        values = _strided_sample(values, SAMPLE_SIZE).cpu() if values.numel() > SAMPLE_SIZE else values.cpu()
    return describe_values(torch, values, memo)


# ---------------------------------------------------------------- namespace walk


def _user_names(shell: Any) -> Iterator[tuple[str, Any]]:
    hidden = shell.user_ns_hidden
    missing = object()
    for name, value in list(shell.user_ns.items()):
        if not isinstance(name, str) or _IPYTHON_CACHE_NAME.match(name):
            continue
        if hidden.get(name, missing) is value:
            continue
        yield name, value


def _key_label(key: Any) -> str | None:
    if isinstance(key, str):
        return repr(key)
    if isinstance(key, (int, bool)):
        return str(int(key))
    return None


def named_tensors(torch: Any, shell: Any, notes: list[str] | None = None) -> Iterator[tuple[str, Any]]:
    """Each tensor reachable by a name the user wrote, one container level deep. A container
    of tensors longer than MAX_CONTAINER_ITEMS gets a line in `notes`."""
    tensor_type = torch.Tensor
    module_type = torch.nn.Module
    for name, value in _user_names(shell):
        if isinstance(value, tensor_type):
            yield name, value
        elif isinstance(value, module_type):
            for label, item in module_type.named_parameters(value):
                yield f"{name}.{label}", item
            for label, item in module_type.named_buffers(value):
                if item is not None:
                    yield f"{name}.{label}", item
        elif type(value) in (list, tuple):
            found = False
            for index, item in enumerate(value[:MAX_CONTAINER_ITEMS]):
                if isinstance(item, tensor_type):
                    found = True
                    yield f"{name}[{index}]", item
            if found and notes is not None and len(value) > MAX_CONTAINER_ITEMS:
                notes.append(f"{name}: the first {MAX_CONTAINER_ITEMS} of its {len(value):,} items are listed")
        elif type(value) is dict:
            found = False
            for count, (key, item) in enumerate(list(itertools.islice(value.items(), MAX_CONTAINER_ITEMS + 1))):
                if count >= MAX_CONTAINER_ITEMS:
                    if found and notes is not None:
                        notes.append(f"{name}: the first {MAX_CONTAINER_ITEMS} of its {len(value):,} items are listed")
                    break
                label = _key_label(key)
                if label is not None and isinstance(item, tensor_type):
                    found = True
                    yield f"{name}[{label}]", item


@contextlib.contextmanager
def _guarded(torch: Any) -> Iterator[None]:
    """No autograd recording, no user __torch_function__ overrides, no warnings."""
    disable = getattr(torch._C, "DisableTorchFunctionSubclass", contextlib.nullcontext)
    grad_was = torch.is_grad_enabled()
    torch._C._set_grad_enabled(False)  # torch.no_grad() without its Python layers
    try:
        with disable(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch._C._set_grad_enabled(grad_was)


def snapshot(shell: Any, memo: ValuesMemo | None = None) -> dict[str, Any]:
    memo = memo or ValuesMemo()
    memo.next_snapshot()
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "Tensor") or not hasattr(torch, "nn"):
        return {"tensors": [], "notes": []}
    tensors: list[dict[str, Any]] = []
    notes: list[str] = []
    skipped = 0
    with _guarded(torch):
        for name, t in named_tensors(torch, shell, notes):
            if len(tensors) >= MAX_TENSORS:
                skipped += 1
                continue
            try:
                tensors.append(describe_tensor(torch, name, t, memo))
            except Exception as exc:
                notes.append(f"{name}: not shown ({type(exc).__name__})")
    if skipped:
        notes.append(f"{skipped} more tensors not shown (limit {MAX_TENSORS})")
    return {"tensors": tensors, "notes": notes}


# ---------------------------------------------------------------- errors


class CellOrigins:
    """Remembers which file and line each compiled cell came from, by its code name."""

    def __init__(self) -> None:
        self.current: dict[str, Any] | None = None
        self.by_code_name: dict[str, dict[str, Any]] = {}

    def wrap_compiler(self, compiler: Any) -> None:
        original = compiler.cache

        def cache(transformed_code: str, number: int = 0, raw_code: str | None = None) -> str:
            name = original(transformed_code, number, raw_code)
            if self.current is not None:
                self.by_code_name[name] = self.current
            return name

        compiler.cache = cache

    def script_line(self, code_name: str | None, lineno: int | None) -> tuple[str | None, int | None]:
        origin = self.by_code_name.get(code_name or "")
        if origin is None or lineno is None:
            return None, None
        return origin.get("file"), int(origin.get("line", 1)) + lineno - 1


def error_frames(exc: BaseException, origins: CellOrigins) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    for frame in traceback.extract_tb(exc.__traceback__):
        file, line = origins.script_line(frame.filename, frame.lineno)
        frames.append(
            {
                "filename": frame.filename,
                "lineno": frame.lineno,
                "name": frame.name,
                "text": (frame.line or "").strip(),
                "script_file": file,
                "script_line": line,
            }
        )
    if isinstance(exc, SyntaxError):
        file, line = origins.script_line(exc.filename, exc.lineno)
        frames.append(
            {
                "filename": exc.filename,
                "lineno": exc.lineno,
                "name": "<module>",
                "text": (exc.text or "").strip(),
                "script_file": file,
                "script_line": line,
            }
        )
    return frames


# ---------------------------------------------------------------- wiring


class Probe:
    def __init__(self, shell: Any, kernel: Any) -> None:
        self.shell = shell
        self.kernel = kernel
        self.origins = CellOrigins()
        self.comm: Any = None
        self.memo = ValuesMemo()
        self.tracer = BackwardTracer(
            lambda torch: named_tensors(torch, shell), _guarded, capture_glance, render_capture
        )
        self.tracer.enabled = os.environ.get(BACKWARD_LOG_ENV, "1") != "0"
        torch = sys.modules.get("torch")
        if torch is not None:
            self.tracer.install(torch)
        else:
            sys.meta_path.insert(0, TorchImportWatcher(self.tracer.install))
        self.sent: dict[str, dict[str, Any]] = {}

    def pre_run_cell(self, info: Any) -> None:
        try:
            parent = self.kernel.get_parent() if self.kernel is not None else {}
            metadata = (parent or {}).get("metadata") or getattr(info, "cell_meta", None) or {}
            origin = metadata.get(ORIGIN_KEY)
            self.origins.current = origin if isinstance(origin, dict) else None
            self.tracer.start_cell(None)
        except Exception:
            self.origins.current = None

    def post_run_cell(self, result: Any) -> None:
        try:
            self.send(self.report(result))
        except BaseException as exc:  # an interrupt that lands in the probe included
            with contextlib.suppress(BaseException):
                self.send({"notes": [f"probe failed: {type(exc).__name__}: {exc}"]})

    def report(self, result: Any) -> dict[str, Any]:
        exc = result.error_before_exec or result.error_in_exec
        snap = snapshot(self.shell, self.memo)
        notes = snap["notes"]
        events = self.tracer.rendered_events()
        for event in events:
            event["cell"] = result.execution_count
        if self.tracer.uncounted:
            notes = [*notes, f"{self.tracer.uncounted} more backward calls not logged (limit {len(self.tracer.events)} a cell)"]
        report = {
            "execution_count": result.execution_count,
            "notes": notes,
            "backward": events,
            "frames": error_frames(exc, self.origins) if exc is not None else [],
        }
        report.update(self.delta(snap["tensors"]))
        return report

    def delta(self, tensors: list[dict[str, Any]]) -> dict[str, Any]:
        """Only what changed since the last report: every name in order, and the new
        descriptions. The front end keeps the table (events.ProbeState)."""
        changed = [t for t in tensors if self.sent.get(t["name"]) != t]
        return {"tensor_names": [t["name"] for t in tensors], "tensors_changed": changed}

    def send(self, data: dict[str, Any]) -> None:
        if self.comm is None:
            import comm

            self.comm = comm.create_comm(target_name=COMM_TARGET, data={})
            self.comm.on_msg(self.on_request)
        self.comm.send(data)
        if "tensor_names" in data:
            self.sent = apply_delta(self.sent, data["tensor_names"], data.get("tensors_changed") or ())


    def on_request(self, msg: dict[str, Any]) -> None:
        """A front end's question, answered on the same comm: {"request": "graph", "name": ...}."""
        try:
            data = (msg.get("content") or {}).get("data") or {}
            if data.get("request") == "graph":
                reply = {"reply": "graph", "graph": self.graph(str(data.get("name")))}
            else:
                reply = {"reply": "error", "error": f"unknown request {data.get('request')!r}"}
        except BaseException as exc:
            reply = {"reply": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        with contextlib.suppress(Exception):
            self.comm.send(reply)

    def graph(self, name: str) -> dict[str, Any]:
        torch = sys.modules.get("torch")
        if torch is None or not hasattr(torch, "Tensor"):
            return {"root": name, "error": "torch is not imported"}
        with _guarded(torch):
            return graph_of(torch, list(named_tensors(torch, self.shell)), name)


def install(shell: Any, kernel: Any) -> Probe:
    probe = Probe(shell, kernel)
    probe.origins.wrap_compiler(shell.compile)
    shell.events.register("pre_run_cell", probe.pre_run_cell)
    shell.events.register("post_run_cell", probe.post_run_cell)
    return probe
