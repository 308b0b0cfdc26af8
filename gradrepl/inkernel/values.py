"""Tensor values as plain data: previews (a tensor's corners), stats (norm, min, max, nan and inf
counts), bounded in cost however big the tensor, and the memo that reuses a small tensor's
description while its values stay the same. Never imports torch: every function is given it.
"""

from __future__ import annotations

import math
import operator
import weakref
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from gradrepl.inkernel.walker import node_name

PREVIEW_EDGE = 3
PYTHON_STATS_LIMIT = 4096
MEMO_LIMIT = 256  # elements: tensors up to this size keep their description while their values stay
FULL_STATS_LIMIT = 1 << 20
SAMPLE_SIZE = 1 << 16


def _numbers_from(values: list[Any]) -> list[float]:
    numbers: list[float] = []
    for value in values:
        if isinstance(value, complex):
            numbers.append(abs(value))
        else:
            numbers.append(float(value))
    return numbers


def plain_value(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, complex):
        return f"{value.real:g}{value.imag:+g}j"
    return value


def python_stats(flat: list[Any], numel: int) -> dict[str, Any]:
    if flat and type(flat[0]) is float and math.isfinite(sum(flat)):  # floats, no nan or inf among them
        return {"norm": plain_value(math.sqrt(sum(map(operator.mul, flat, flat)))), "min": min(flat), "max": max(flat),
                "nan": 0, "inf": 0, "sampled": False, "sample_size": numel}
    numbers = _numbers_from(flat)
    nan = sum(1 for x in numbers if math.isnan(x))
    inf = sum(1 for x in numbers if math.isinf(x))
    finite = [x for x in numbers if math.isfinite(x)]
    return {
        "norm": plain_value(math.sqrt(sum(x * x for x in numbers))) if numbers else 0.0,
        "min": min(finite) if finite else None,
        "max": max(finite) if finite else None,
        "nan": nan,
        "inf": inf,
        "sampled": False,
        "sample_size": numel,
    }


def strided_sample(t: Any, limit: int) -> Any:
    """A view of at most `limit` elements spread over the whole tensor (no copy)."""
    steps = [1] * t.dim()
    sizes = list(t.shape)

    def kept(dim: int) -> int:
        return -(-sizes[dim] // steps[dim])

    while math.prod(kept(d) for d in range(len(sizes))) > limit:
        widest = max(range(len(sizes)), key=kept)
        steps[widest] *= 2
    return t[tuple(slice(None, None, s) for s in steps)]


def torch_stats(torch: Any, t: Any, numel: int) -> dict[str, Any]:
    sampled = numel > FULL_STATS_LIMIT
    part = strided_sample(t, SAMPLE_SIZE) if sampled else t
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
        "norm": plain_value(norm),
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
        inner = [*inner[:gap], "…", *inner[gap:]]
    return inner


def _preview_of_large(torch: Any, t: Any) -> tuple[Any, bool]:
    """First and last PREVIEW_EDGE entries along every dimension."""
    corner, gaps, kept_shape = corner_entries(torch, t)
    return preview_of_corner(corner, gaps, kept_shape), any(g is not None for g in gaps)


def corner_entries(torch: Any, t: Any) -> tuple[Any, list[int | None], list[int]]:
    """The entries a preview shows, copied out one dimension at a time with index_select
    (the index tensors are made once per size)."""
    gaps: list[int | None] = []
    kept_shape: list[int] = []
    corner = t
    for dim, size in enumerate(t.shape):
        if size > 2 * PREVIEW_EDGE:
            index = edge_index(torch, size)
            corner = corner.index_select(dim, index if index.device == t.device else index.to(t.device))
            gaps.append(PREVIEW_EDGE)
            kept_shape.append(2 * PREVIEW_EDGE)
        else:
            gaps.append(None)
            kept_shape.append(size)
    return corner, gaps, kept_shape


def preview_of_corner(corner: Any, gaps: list[int | None], kept_shape: list[int]) -> Any:
    return _insert_gaps(_plain_preview(corner.reshape(-1).tolist(), kept_shape), gaps)


_EDGE_INDEX: dict[int, Any] = {}


def edge_index(torch: Any, size: int) -> Any:
    index = _EDGE_INDEX.get(size)
    if index is None:
        if len(_EDGE_INDEX) > 256:
            _EDGE_INDEX.clear()
        positions = list(range(PREVIEW_EDGE)) + list(range(size - PREVIEW_EDGE, size))
        index = _EDGE_INDEX[size] = torch.tensor(positions, dtype=torch.long)
    return index


def _plain_preview(flat: list[Any], shape: list[int]) -> Any:
    """`flat` nested to `shape`, as JSON can carry it. Finite floats, ints and bools are that
    already: only nan, inf and complex numbers are rewritten (one pass over the values)."""
    kind = type(flat[0]) if flat else float
    if kind is int or kind is bool or (kind is float and math.isfinite(sum(flat))):
        return _reshape(flat, shape)
    return _plain_nested(_reshape(flat, shape))


def _plain_nested(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain_nested(v) for v in value]
    return plain_value(value)


class ValuesMemo:
    """Descriptions of small tensors from the last snapshot, reused while their values are
    equal. Values are compared, not `_version`: writes through `.data` do not bump it."""

    def __init__(self) -> None:
        self.previous: dict[tuple[Any, ...], tuple[list[Any], dict[str, Any]]] = {}
        self.current: dict[tuple[Any, ...], tuple[list[Any], dict[str, Any]]] = {}

        self._serials: dict[int, tuple[Any, int]] = {}
        self._next_serial = 0
        self._said: set[Any] = set()
        self._saying: set[Any] = set()
        self.device_copies: Any = None  # device_values.DeviceCopies of the snapshot being made
        from gradrepl.inkernel.described_cache import DescribedCache

        self.described = DescribedCache()  # descriptions kept while nothing about their tensor changes

    def finish(self, torch: Any) -> None:
        """The snapshot's table is complete: its accelerator tensors' copies are waited for (once
        per device) and their descriptions filled in."""
        copies, self.device_copies = self.device_copies, None
        if copies is not None:
            copies.finish(torch)

    def next_snapshot(self) -> None:
        self.previous, self.current = self.current, {}
        self._said, self._saying = self._saying, set()

    def first_time(self, key: Any) -> bool:
        """Whether `key` (a note about one tensor) was not said in the last snapshot; said now."""
        self._saying.add(key)
        return key not in self._said

    def serial(self, t: Any) -> int:
        """A number for this tensor object, stable while it lives and never reused: the front
        end tells a tensor rebound to the same name from the same tensor changed."""
        known = self._serials.get(id(t))
        if known is not None and known[0]() is t:
            return known[1]
        self._next_serial += 1
        key = id(t)

        def forget(_: Any) -> None:
            self._serials.pop(key, None)

        try:
            ref = weakref.ref(t, forget)
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
            known = (flat, _describe_flat(torch, t, flat))
        self.current[key] = known
        return known[1]


def _describe_flat(torch: Any, t: Any, flat: list[Any]) -> dict[str, Any]:
    """A tensor of at most PYTHON_STATS_LIMIT elements from its values as a list: no torch
    call but that one (a model's 8x8 weights cost a third of what index_select does)."""
    return describe_list(flat, list(t.shape), t.dtype == torch.bool)


def describe_list(flat: list[Any], shape: list[int], boolean: bool = False) -> dict[str, Any]:
    """describe_values' result for a tensor of `shape` whose values are `flat` (tolist() of it, reshaped to 1-D)."""
    truncated = any(size > 2 * PREVIEW_EDGE for size in shape)
    if truncated and flat:
        pick, gaps, kept_shape = _list_corner(tuple(shape))
        preview = _insert_gaps(_plain_preview(list(pick(flat)), kept_shape), gaps)
    else:
        preview = _plain_preview(flat, shape)
        preview = _cut_edges(preview) if truncated else preview  # an empty tensor: its long dimensions still cut
    return {
        "preview": preview,
        "truncated": truncated,
        "stats": python_stats(flat, len(flat)) if flat and not boolean else None,
    }


def _cut_edges(nested: Any) -> Any:
    """The first and last PREVIEW_EDGE entries of each long dimension, "…" between them."""
    if not isinstance(nested, list):
        return nested
    if len(nested) <= 2 * PREVIEW_EDGE:
        return [_cut_edges(item) for item in nested]
    ends = [_cut_edges(item) for item in (*nested[:PREVIEW_EDGE], *nested[-PREVIEW_EDGE:])]
    return [*ends[:PREVIEW_EDGE], "…", *ends[PREVIEW_EDGE:]]


_ListCorner = tuple[Callable[[list[Any]], tuple[Any, ...]], list[int | None], list[int]]
_LIST_CORNERS: dict[tuple[int, ...], _ListCorner] = {}


def _list_corner(shape: tuple[int, ...]) -> _ListCorner:
    """For a flat list of a cut `shape` (a dimension longer than 2 * PREVIEW_EDGE, none empty): a
    getter of the entries a preview keeps (the first and last PREVIEW_EDGE of each long
    dimension), where the cuts go, and the shape kept. Made once per shape."""
    known = _LIST_CORNERS.get(shape)
    if known is not None:
        return known
    gaps = [PREVIEW_EDGE if size > 2 * PREVIEW_EDGE else None for size in shape]
    positions = [0]
    for size, gap in zip(shape, gaps, strict=True):
        kept = range(size) if gap is None else [*range(PREVIEW_EDGE), *range(size - PREVIEW_EDGE, size)]
        positions = [base * size + index for base in positions for index in kept]
    kept_shape = [size if gap is None else 2 * PREVIEW_EDGE for size, gap in zip(shape, gaps, strict=True)]
    pick = itemgetter(*positions)  # 2 * PREVIEW_EDGE positions at least: a tuple
    if len(_LIST_CORNERS) > 256:
        _LIST_CORNERS.clear()
    known = _LIST_CORNERS[shape] = (pick, gaps, kept_shape)
    return known


def describe_values(torch: Any, t: Any, memo: ValuesMemo | None = None) -> dict[str, Any]:
    """Preview and stats of a (detached, strided) tensor's values, bounded in cost."""
    numel = t.numel()
    if t.is_quantized:
        t = t.dequantize()
    if numel <= MEMO_LIMIT and memo is not None:
        return memo.describe_small(torch, t)
    if numel <= PYTHON_STATS_LIMIT:
        return _describe_flat(torch, t, t.reshape(-1).tolist())
    preview, truncated = _preview_of_large(torch, t)
    stats = torch_stats(torch, t, numel) if t.dtype != torch.bool else None
    return {"preview": preview, "truncated": truncated, "stats": stats}


def shape_of(t: Any) -> list[int | None]:
    """A tensor's sizes; for a nested tensor, None for each dimension whose size varies."""
    if not t.is_nested:
        return list(t.shape)
    sizes: list[int | None] = []
    for dim in range(t.dim()):
        try:
            size = t.size(dim)
        except RuntimeError:  # "dimension 1 is irregular"
            size = None
        sizes.append(size if type(size) is int else None)  # a jagged size is a SymInt
    return sizes


def not_previewed(torch: Any, t: Any) -> str | None:
    """Why a tensor's values have no preview (a sparse or nested layout), or None."""
    if t.is_nested:
        return f"nested tensor ({str(t.layout).removeprefix('torch.')} layout), not previewed"
    if t.layout != torch.strided:
        return f"{str(t.layout).removeprefix('torch.')} layout, not previewed"
    return None


def unpreviewed_label(torch: Any, t: Any) -> str | None:
    """What a tensor without a preview is, where no other field says it: "2x2 sparse_coo
    tensor, not previewed", "2x*x3 nested tensor (strided layout), not previewed"; else None."""
    reason = not_previewed(torch, t)
    if reason is None:
        return None
    shape = "x".join("*" if size is None else str(size) for size in shape_of(t)) or "scalar"
    if t.is_nested:
        return f"{shape} {reason}"
    return f"{shape} {str(t.layout).removeprefix('torch.')} tensor, not previewed"


def describe_metadata(torch: Any, name: str, t: Any, memo: ValuesMemo | None = None,
                      note: str | None = None) -> dict[str, Any]:
    """What the front end lists of one tensor without reading its values."""
    return {
        "name": name,
        "shape": shape_of(t),
        "dtype": str(t.dtype).removeprefix("torch."),
        "device": str(t.device),
        "layout": str(t.layout).removeprefix("torch."),
        "requires_grad": bool(t.requires_grad),
        "is_leaf": bool(t.is_leaf),
        "grad_fn": node_name(t.grad_fn) if t.grad_fn is not None else None,
        "retains_grad": bool(t.retains_grad),
        "version": int(t._version),
        "type": type(t).__name__,
        "object": memo.serial(t) if memo is not None else None,
        "data": None,
        "grad": None,
        "note": note,
    }


def describe_tensor(torch: Any, name: str, t: Any, memo: ValuesMemo | None = None) -> dict[str, Any]:
    """Everything the front end shows of one tensor, as plain data."""
    info = describe_metadata(torch, name, t, memo)
    reason = not_previewed(torch, t)
    if reason is not None:
        info["note"] = f"values not shown: {reason}"
    else:
        try:
            info["data"] = describe_data(torch, t, memo)
        except Exception as exc:  # meta tensors, user subclasses
            info["note"] = f"values not shown: {type(exc).__name__}: {exc}"[:200]
    if t.is_leaf or t.retains_grad:
        grad = t.grad
        if grad is not None:
            grad_reason = not_previewed(torch, grad)
            if grad_reason is not None:
                if grad_reason != reason:  # the same reason as the values' is said once
                    info["note"] = f"grad not shown: {grad_reason}"
            else:
                try:
                    info["grad"] = describe_data(torch, grad, memo)
                except Exception as exc:
                    info["note"] = f"grad not shown: {type(exc).__name__}: {exc}"[:200]
    return info


def describe_data(torch: Any, t: Any, memo: ValuesMemo | None = None) -> dict[str, Any] | None:
    if t.device.type == "meta":
        return None
    values = t.detach()
    if values.device.type != "cpu":  # copied with the report's others, filled in by ValuesMemo.finish
        from gradrepl.inkernel.device_values import DeviceCopies, describe_on_device

        values = values.dequantize() if values.is_quantized else values
        if memo is None:
            return describe_on_device(torch, values)
        if memo.device_copies is None:
            memo.device_copies = DeviceCopies()
        return memo.device_copies.describe(torch, values)
    return describe_values(torch, values, memo)
