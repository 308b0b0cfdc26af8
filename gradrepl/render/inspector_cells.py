"""The tensor inspector's cells, without Textual: each row's texts, which of them the last
cell changed, and the columns' widths for the pane's width.

Widths go by priority: name, grad, data and grad_fn first get a share each, and shape all it
needs; then what is left goes to name, grad, data and grad_fn in that order, up to a cap each;
dtype, req_grad and leaf are shown only in the room left after that (each whole, or not at
all: the detail has them); the last of the room goes past the caps. A text wider than its
column is cut with "…".
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from gradrepl.protocol import TensorInfo
from gradrepl.render.health import log_ratio
from gradrepl.render.inspector_rows import ModuleRow, Row, TensorRow
from gradrepl.render.sparkline import sparkline
from gradrepl.render.tensors import flag, shape_text
from gradrepl.render.text import ELLIPSIS, counted, number, values_preview

COLUMNS = (  # (key, header), left to right
    ("name", "name"),
    ("shape", "shape"),
    ("dtype", "dtype"),
    ("requires_grad", "req_grad"),
    ("is_leaf", "leaf"),
    ("grad_fn", "grad_fn"),
    ("data", "data"),
    ("grad", "grad"),
    ("trend", "‖g‖/‖w‖"),  # the grad's size against the tensor's over the calls that wrote it
)
PRIORITY = ("name", "grad", "data", "grad_fn")
SHARE = {"name": 10, "grad": 12, "data": 12, "grad_fn": 14}
CAP = {"name": 24, "grad": 24, "data": 20, "grad_fn": 16}  # at 120 columns req_grad and leaf still fit
ESSENTIAL = ("shape",)  # whole, right after the shares
OPTIONAL = ("trend", "dtype", "requires_grad", "is_leaf")  # whole, in the room the caps leave (the trend first)
TREND_WIDTH = 8  # points of a grad's health sparkline
FOLDED, UNFOLDED = "▸", "▾"
NONE = "—"

Cells = dict[str, str]


def text_width(text: str) -> int:
    """Terminal columns: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1 for c in text)


def cut(text: str, width: int) -> str:
    """`text` in at most `width` columns, ending in "…" where it was cut."""
    if text_width(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        size = text_width(char)
        if used + size > width - 1:
            break
        kept.append(char)
        used += size
    return "".join(kept) + ELLIPSIS if width > 0 else ""


def _indent(depth: int) -> str:
    return "  " * depth


def tensor_cells(row: TensorRow) -> Cells:
    info = row.info
    name = row.label + (f" (= {', '.join(info.aliases)})" if info.aliases else "")
    return {
        "name": _indent(row.depth) + name,
        "shape": shape_text(info.shape),
        "dtype": info.dtype,
        "requires_grad": flag(info.requires_grad),
        "is_leaf": flag(info.is_leaf),
        "grad_fn": info.grad_fn or NONE,
        "data": values_preview(info.data) if info.data else (info.note or ELLIPSIS),
        "grad": NONE if info.grad is None else values_preview(info.grad),
        "trend": trend(info),
    }


def module_trend(tensors: Sequence[TensorInfo]) -> str:
    """A module's trend: that of its tensor whose ‖grad‖/‖param‖ is smallest now (the one nearest to vanishing)."""
    followed = [info for info in tensors if info.grad_history is not None and len(info.grad_history.calls) >= 2]
    if not followed:
        return ""

    def now(info: TensorInfo) -> float:
        ratio = info.grad_history.ratio() if info.grad_history is not None else None
        return ratio if isinstance(ratio, float) else math.inf

    return trend(min(followed, key=now))


def trend(info: TensorInfo) -> str:
    """‖grad‖/‖param‖ over the calls that wrote the grad, on a log scale; "" for a tensor with fewer than two."""
    history = info.grad_history
    if history is None or len(history.calls) < 2:
        return ""
    return sparkline([log_ratio(history.ratio(at)) for at in range(len(history.calls))], TREND_WIDTH)


def grad_norm(tensors: Iterable[TensorInfo]) -> str:
    """The norm of all their grads together ("norm 0.0351"), saying how many of the tensors
    that require grad have one when not all do; "—" when none has."""
    norms: list[float] = []
    odd: set[str] = set()
    estimated = False
    wanting = 0
    with_grad = 0
    for info in tensors:
        wanting += info.requires_grad
        if info.grad is None:
            continue
        with_grad += 1
        stats = info.grad.stats
        if stats is None:
            continue
        estimated = estimated or stats.sampled
        if isinstance(stats.norm, str):
            odd.add(stats.norm)
        else:
            norms.append(float(stats.norm))
    if not with_grad:
        return NONE
    total = "nan" if "nan" in odd else "inf" if odd else number(math.hypot(*norms))
    text = f"norm {'≈' if estimated else ''}{total}"
    if with_grad < wanting:
        text += f" ({with_grad} of {wanting})"
    return text


def _elements(info: TensorInfo) -> int | None:
    return None if any(size is None for size in info.shape) else math.prod(size or 0 for size in info.shape)


def module_cells(row: ModuleRow) -> Cells:
    tensors = row.tensors
    buffers = sum(info.buffer for info in tensors)
    held = counted(len(tensors) - buffers, "param") + (f" + {buffers:,} buf" if buffers else "")
    sizes = [_elements(info) for info in tensors]
    elements = f"{sum(s for s in sizes if s is not None):,}" + ("+" if None in sizes else "")  # "+": a nested tensor's
    dtypes = {info.dtype for info in tensors}
    wanting = sum(info.requires_grad for info in tensors)
    return {
        "name": f"{_indent(row.depth)}{UNFOLDED if row.unfolded else FOLDED} {row.label}  {row.type_name}",
        "shape": held,
        "dtype": dtypes.pop() if len(dtypes) == 1 else "mixed",
        "requires_grad": "yes" if wanting == len(tensors) else "no" if not wanting else "some",
        "is_leaf": "",
        "grad_fn": "",
        "data": f"{elements} values",
        "grad": grad_norm(tensors),
        "trend": module_trend(tensors),
    }


def row_cells(row: Row) -> Cells:
    return tensor_cells(row) if isinstance(row, TensorRow) else module_cells(row)


WHOLE_ROW = "row"
_COLUMN_KEYS = {key for key, _ in COLUMNS}
_SUMMARISED = {"grad": "grad", "requires_grad": "requires_grad", "dtype": "dtype", "aliases": "name",
               "shape": "data", "data": "data", "version": "data", "name": "data"}  # a new tensor: the count changed


def row_changes(row: Row, changed: Mapping[str, set[str]]) -> set[str]:
    """The row's columns to mark, from what changed of each tensor (changed_fields; "name":
    a new tensor): WHOLE_ROW for a new tensor, or a module all of whose tensors are new; a
    module row marks the columns that sum up what changed in its tensors."""
    if isinstance(row, TensorRow):
        fields = changed.get(row.key, set())
        if "name" in fields:
            return {WHOLE_ROW}
        return (fields & _COLUMN_KEYS) | ({"name"} if "aliases" in fields else set())
    each = [changed[info.name] for info in row.tensors if info.name in changed]
    if not each:
        return set()
    if len(each) == len(row.tensors) and all("name" in fields for fields in each):
        return {WHOLE_ROW}
    return {_SUMMARISED[name] for fields in each for name in fields if name in _SUMMARISED}


def column_widths(rows: Sequence[Cells], available: int, padding: int = 1) -> dict[str, int]:
    """Each shown column's width (its key absent: left out) for a table `available` columns
    wide whose cells take `padding` on each side."""
    headers = dict(COLUMNS)
    wanted = {key: max([text_width(headers[key]), *(text_width(cells[key]) for cells in rows)]) for key, _ in COLUMNS}
    widths: dict[str, int] = {}
    spare = available

    def add(key: str, width: int) -> None:
        nonlocal spare
        if width + 2 * padding <= spare:
            widths[key] = width
            spare -= width + 2 * padding

    def grow(limits: Mapping[str, int]) -> None:
        nonlocal spare
        for key in PRIORITY:
            if key in widths and spare > 0:
                more = min(max(min(wanted[key], limits.get(key, wanted[key])) - widths[key], 0), spare)
                widths[key] += more
                spare -= more

    for key in PRIORITY:
        add(key, min(wanted[key], SHARE[key]))
    for key in ESSENTIAL:
        add(key, wanted[key])
    grow(CAP)
    for key in OPTIONAL:
        if key == "trend" and not any(cells["trend"] for cells in rows):
            continue  # no tensor has a history to draw
        add(key, wanted[key])
    grow({})
    return {key: widths[key] for key, _ in COLUMNS if key in widths}
