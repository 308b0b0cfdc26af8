"""Plain-text forms of the probe's tensor descriptions (protocol.TensorInfo), for the app's panes."""

from __future__ import annotations

from typing import Any

from gradrepl.protocol import Stats, TensorInfo
from gradrepl.render.text import ELLIPSIS, number, preview_text


def preview_lines(preview: Any, width: int = 10) -> list[str]:
    """A preview laid out one row per line with aligned columns, like torch prints a matrix."""
    if not isinstance(preview, (list, tuple)) or not preview or not isinstance(preview[0], (list, tuple)):
        return [preview_text(preview)]
    if all(not isinstance(cell, (list, tuple)) for row in preview if isinstance(row, (list, tuple)) for cell in row):
        rows = [[preview_text(cell) for cell in row] if isinstance(row, (list, tuple)) else [ELLIPSIS] for row in preview]
        columns = max(len(row) for row in rows)
        widths = [max((len(row[c]) for row in rows if c < len(row)), default=0) for c in range(columns)]
        lines = []
        for index, row in enumerate(rows):
            cells = ", ".join(cell.rjust(widths[c]) for c, cell in enumerate(row))
            opening = "[[" if index == 0 else " ["
            closing = "]]" if index == len(rows) - 1 else "],"
            lines.append(f"{opening}{cells}{closing}")
        return lines
    return [preview_text(preview)]


def shape_text(shape: tuple[int | None, ...]) -> str:
    """(2, 3); a nested tensor's dimension whose size varies is `*`: (2, *, 3)."""
    sizes = ["*" if size is None else str(size) for size in shape]
    return "(" + ", ".join(sizes) + ("," if len(shape) == 1 else "") + ")"


def stats_text(stats: Stats | None) -> str:
    if stats is None:
        return "no stats for this dtype"
    parts = [f"norm {number(stats.norm)}", f"min {number(stats.min)}", f"max {number(stats.max)}"]
    if stats.nan:
        parts.append(f"nan {stats.nan}")
    if stats.inf:
        parts.append(f"inf {stats.inf}")
    if stats.sampled:
        parts.append(f"sampled from {stats.sample_size:,} elements")
    return ", ".join(parts)


def flag(value: bool) -> str:
    return "yes" if value else "no"


def changed_fields(before: TensorInfo | None, after: TensorInfo) -> set[str]:
    """Which of a tensor's inspector columns differ from its description after the last cell."""
    if before is None:
        return {"name"}
    names = ("shape", "dtype", "device", "requires_grad", "is_leaf", "grad_fn", "data", "grad", "version", "aliases")
    return {name for name in names if getattr(before, name) != getattr(after, name)}
