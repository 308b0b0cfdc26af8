"""Glances: what the backward tracer keeps of a tensor at each call (a root, a gradient, a
leaf's grad before and after), copied cheaply on the hot path and rendered to protocol.Values
(the same previews and stats as values.py gives) once the cell has run. Never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import itemgetter
from typing import Any, NamedTuple

from gradrepl.inkernel.values import (
    PREVIEW_EDGE,
    SAMPLE_SIZE,
    corner_entries,
    describe_values,
    edge_index,
    plain_value,
    preview_of_corner,
    python_stats,
    strided_sample,
    unpreviewed_label,
)
from gradrepl.protocol import Stats, Values

GLANCE_STATS_LIMIT = 64  # elements: a glance at a tensor this small keeps all of it, stats included


class _Corner(NamedTuple):
    """How a glance copies a tensor of one shape: the flat positions of the entries it keeps
    (one `take`), where the preview is cut, and the itemgetters that nest the copied values into
    the preview: for each dimension, innermost first, one getter per tuple of that level, picking
    from the level below with "…" appended last."""

    index: Any
    gaps: list[int | None]
    kept_shape: list[int]
    truncated: bool
    levels: tuple[tuple[Callable[[list[Any]], tuple[Any, ...]], ...], ...]


_CORNERS: dict[tuple[int, ...], _Corner] = {}  # the lists in them are shared, never changed


def _corner_of_shape(torch: Any, shape: tuple[int, ...]) -> _Corner:
    gaps = [PREVIEW_EDGE if size > 2 * PREVIEW_EDGE else None for size in shape]
    kept_shape = [size if gap is None else 2 * PREVIEW_EDGE for size, gap in zip(shape, gaps, strict=True)]
    index = torch.zeros(1, dtype=torch.long)
    for size, gap in zip(shape, gaps, strict=True):
        kept = torch.arange(size) if gap is None else edge_index(torch, size)
        index = (index[:, None] * size + kept[None, :]).reshape(-1)
    levels = []
    count = math.prod(kept_shape)
    for size, gap in zip(reversed(kept_shape), reversed(gaps), strict=True):
        getters = []
        for start in range(0, count, size):
            positions = list(range(start, start + size))
            if gap is not None:
                positions.insert(gap, count)
            getters.append(itemgetter(*positions) if len(positions) > 1 else _one_item(positions[0]))
        levels.append(tuple(getters))
        count //= size
    if len(_CORNERS) > 256:
        _CORNERS.clear()
    corner = _CORNERS[shape] = _Corner(index, gaps, kept_shape, any(g is not None for g in gaps), tuple(levels))
    return corner


def _one_item(position: int) -> Callable[[list[Any]], tuple[Any, ...]]:
    return lambda items: (items[position],)


class Capture:
    """What a glance needs of a tensor at one moment, copied so later in-place changes do not
    reach it; turned into a Values record later (`render_capture`), off the hot path."""

    __slots__ = ("corner", "values")

    def __init__(self, values: Any, corner: _Corner | None) -> None:
        self.values = values  # the whole tensor when small (corner None), else its corner, flattened
        self.corner = corner

    @classmethod
    def corner_of(cls, torch: Any, values: Any) -> Capture:
        """The entries `corner_entries` keeps, copied by one `take` rather than an index_select per dimension."""
        shape = tuple(values.shape)
        corner = _CORNERS.get(shape) or _corner_of_shape(torch, shape)
        if values.is_quantized:  # no take for these
            kept = corner_entries(torch, values)[0]
            return cls((kept if kept is not values else kept.clone()).reshape(-1), corner)
        return cls(torch.take(values, corner.index), corner)

    def same_as(self, other: Any, torch: Any) -> bool:
        if type(other) is not Capture or self.values.dtype != other.values.dtype:
            return False
        if self.corner is None or other.corner is None:
            same_cut = self.corner is other.corner and self.values.shape == other.values.shape
        else:
            same_cut = self.corner.gaps == other.corner.gaps and self.corner.kept_shape == other.corner.kept_shape
        return same_cut and bool(torch.equal(self.values, other.values))

    def corner_preview(self) -> Any:
        """`preview_of_corner` of the values as nested tuples (as a Values record holds them),
        quicker when none needs `plain_value` (no nan, inf or complex)."""
        corner = self.corner
        assert corner is not None
        if self.values.is_complex():
            return as_tuples(preview_of_corner(self.values, corner.gaps, corner.kept_shape))
        nested = self.values.tolist()
        if not math.isfinite(sum(nested)):
            return as_tuples(preview_of_corner(self.values, corner.gaps, corner.kept_shape))
        for getters in corner.levels:
            nested.append("…")
            nested = [pick(nested) for pick in getters]
        return nested[0]


class Unpreviewed:
    """A glance at a tensor of a layout with no preview (sparse, nested): what it is, no values."""

    __slots__ = ("note",)

    def __init__(self, note: str) -> None:
        self.note = note

    def same_as(self, other: Any, torch: Any) -> bool:
        return False  # values not kept: a new grad object or version is a change


def capture_glance(torch: Any, t: Any) -> Capture | Unpreviewed | None:
    """A copy of the part of `t` a glance shows: cheap enough for every backward call."""
    if t.layout != torch.strided or t.is_nested:
        label = unpreviewed_label(torch, t)
        if label is not None:
            return Unpreviewed(label)
    if t.is_meta:
        return None
    # Every path below copies; the copy records no graph when grad mode is off (as under namespace.guarded).
    values = t.detach() if t.requires_grad and torch.is_grad_enabled() else t
    if values.numel() <= GLANCE_STATS_LIMIT:
        return Capture(values.clone() if values.is_cpu else values.cpu(), None)
    if not values.is_cpu:
        values = strided_sample(values, SAMPLE_SIZE).cpu() if values.numel() > SAMPLE_SIZE else values.cpu()
    return Capture.corner_of(torch, values)


def render_capture(torch: Any, capture: Capture | Unpreviewed | None) -> Values | None:
    """What a glance shows: describe_values' preview and stats for a small tensor, the
    corner preview alone for a larger one, a note for a layout with no preview."""
    if capture is None:
        return None
    if type(capture) is Unpreviewed:
        return Values(None, False, None, capture.note)
    assert type(capture) is Capture
    if capture.corner is not None:
        return Values(capture.corner_preview(), capture.corner.truncated, None)
    values = capture.values
    dim = values.dim()
    if dim <= 1 and not values.is_quantized:
        # describe_values' result for a scalar (a root, mostly) or a vector (a bias's grad), built directly
        flat = values.tolist() if dim else [values.tolist()]
        stats = Stats(**python_stats(flat, len(flat))) if flat and values.dtype != torch.bool else None
        if not dim:
            return Values(plain_value(flat[0]), False, stats)
        if len(flat) <= 2 * PREVIEW_EDGE:
            return Values(tuple(map(plain_value, flat)), False, stats)
        return Values((*map(plain_value, flat[:PREVIEW_EDGE]), "…", *map(plain_value, flat[-PREVIEW_EDGE:])), True, stats)
    return values_record(describe_values(torch, values))


def values_record(data: dict[str, Any]) -> Values:
    """describe_values' plain data as the protocol record."""
    stats = data.get("stats")
    return Values(as_tuples(data.get("preview")), bool(data.get("truncated")),
                  None if stats is None else Stats.from_json(stats), data.get("note"))


def as_tuples(preview: Any) -> Any:
    """A nested preview list as nested tuples. The items of one level are all lists or all
    values, "…" markers aside, which are never first or last."""
    if type(preview) is not list:
        return preview
    if preview and (type(preview[0]) is list or type(preview[-1]) is list):
        return tuple([as_tuples(item) for item in preview])
    return tuple(preview)
