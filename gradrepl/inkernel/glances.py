"""Glances: what the backward tracer keeps of a tensor at each call (a root, a gradient, a
leaf's grad before and after), copied cheaply on the hot path and rendered to protocol.Values
(the same previews and stats as values.py gives) once the cell has run. Never imports torch.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

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
)
from gradrepl.protocol import Stats, Values

GLANCE_STATS_LIMIT = 64  # elements: a glance at a tensor this small keeps all of it, stats included


class Capture:
    """What a glance needs of a tensor at one moment, copied so later in-place changes do not
    reach it; turned into a Values record later (`render_capture`), off the hot path."""

    __slots__ = ("gaps", "kept_shape", "values")
    # shape -> (flat positions of its corner, gaps, kept_shape)
    _take_index: ClassVar[dict[tuple[int, ...], tuple[Any, list[int | None], list[int]]]] = {}

    def __init__(self, values: Any, gaps: list[int | None] | None, kept_shape: list[int]) -> None:
        self.values = values  # the whole tensor when small (gaps None), else its corner, flattened
        self.gaps = gaps
        self.kept_shape = kept_shape

    @classmethod
    def corner_of(cls, torch: Any, values: Any) -> Capture:
        """The entries `corner_entries` keeps, copied by one `take` rather than an index_select per dimension."""
        shape = tuple(values.shape)
        known = cls._take_index.get(shape)
        if known is not None and not values.is_quantized:
            index, gaps, kept_shape = known
            return cls(torch.take(values, index), gaps, kept_shape)
        gaps = [PREVIEW_EDGE if size > 2 * PREVIEW_EDGE else None for size in shape]
        kept_shape = [size if gap is None else 2 * PREVIEW_EDGE for size, gap in zip(shape, gaps, strict=True)]
        if values.is_quantized:  # no take for these
            corner = corner_entries(torch, values)[0]
            return cls((corner if corner is not values else corner.clone()).reshape(-1), gaps, kept_shape)
        if len(cls._take_index) > 256:
            cls._take_index.clear()
        index = torch.zeros(1, dtype=torch.long)
        for size, gap in zip(shape, gaps, strict=True):
            kept = torch.arange(size) if gap is None else edge_index(torch, size)
            index = (index[:, None] * size + kept[None, :]).reshape(-1)
        cls._take_index[shape] = (index, gaps, kept_shape)  # the lists are shared, never changed
        return cls(torch.take(values, index), gaps, kept_shape)

    def same_as(self, other: Capture | None, torch: Any) -> bool:
        return (
            other is not None and self.gaps == other.gaps and self.kept_shape == other.kept_shape
            and self.values.dtype == other.values.dtype and bool(torch.equal(self.values, other.values))
        )

    def corner_preview(self) -> Any:
        """`preview_of_corner` of the values as nested tuples (as a Values record holds them),
        quicker when none needs `plain_value` (no nan, inf or complex)."""
        assert self.gaps is not None
        if self.values.is_complex():
            return as_tuples(preview_of_corner(self.values, self.gaps, self.kept_shape))
        nested = self.values.tolist()
        if not math.isfinite(sum(nested)):
            return as_tuples(preview_of_corner(self.values, self.gaps, self.kept_shape))
        for size, gap in zip(reversed(self.kept_shape), reversed(self.gaps), strict=True):
            starts = range(0, len(nested), size)
            if gap is None:
                nested = [tuple(nested[start:start + size]) for start in starts]
            else:
                nested = [(*nested[start:start + gap], "…", *nested[start + gap:start + size]) for start in starts]
        return nested[0]


def capture_glance(torch: Any, t: Any) -> Capture | None:
    """A copy of the part of `t` a glance shows: cheap enough for every backward call."""
    if t.layout != torch.strided:
        raise ValueError(f"{t.layout} layout")
    if t.is_meta:
        return None
    # Every path below copies; the copy records no graph when grad mode is off (as under namespace.guarded).
    values = t.detach() if t.requires_grad and torch.is_grad_enabled() else t
    if values.numel() <= GLANCE_STATS_LIMIT:
        return Capture(values.clone() if values.is_cpu else values.cpu(), None, list(values.shape))
    if not values.is_cpu:
        values = strided_sample(values, SAMPLE_SIZE).cpu() if values.numel() > SAMPLE_SIZE else values.cpu()
    return Capture.corner_of(torch, values)


def render_capture(torch: Any, capture: Capture | None) -> Values | None:
    """What a glance shows: describe_values' preview and stats for a small tensor, the
    corner preview alone for a larger one."""
    if capture is None:
        return None
    values = capture.values
    if capture.gaps is not None:
        return Values(capture.corner_preview(), any(g is not None for g in capture.gaps), None)
    if values.dim() <= 1 and not values.is_quantized:
        # describe_values' result for a scalar (a root, mostly) or a vector (a bias's grad), built directly
        flat = values.tolist() if values.dim() else [values.tolist()]
        stats = Stats(**python_stats(flat, len(flat))) if flat and values.dtype != torch.bool else None
        if len(flat) <= 2 * PREVIEW_EDGE:
            return Values(tuple(map(plain_value, flat)) if values.dim() else plain_value(flat[0]), False, stats)
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
