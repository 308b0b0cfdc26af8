"""Plain-text forms of values and backward calls, shared by every front end (the app, replay)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gradrepl.protocol import BackwardEvent, LeafChange, Values
from gradrepl.protocol.backward import HookEffect

ELLIPSIS = "…"


def counted(count: int, noun: str) -> str:
    """"1 cell", "2 cells": a count with its noun (a plain -s plural)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def number(value: Any) -> str:
    """A compact number: 1.5, 3, -0.25, 1e-08, True."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return {"nan": "nan", "inf": "inf", "-inf": "-inf"}[repr(value)]
        return f"{value:.4g}"
    return str(value)


def preview_text(preview: Any) -> str:
    """Nested preview lists as one line: [[1.5, 3], [4.5, 6]]."""
    if isinstance(preview, (list, tuple)):
        return "[" + ", ".join(preview_text(item) for item in preview) + "]"
    if preview == ELLIPSIS:
        return ELLIPSIS
    return number(preview)


def values_preview(values: Values | None) -> str:
    """A tensor's values as one line; "None" for no values."""
    if values is None:
        return "None"
    if values.preview is None and values.note:
        return f"<{values.note}>"
    return preview_text(values.preview)


def grad_kind(leaf: LeafChange) -> str:
    return "accumulated" if leaf.accumulated else "fresh"


def backward_line(event: BackwardEvent, max_nodes: int = 6, cell_error: str | None = None) -> str:
    """One backward event in one line:
    v_out.backward(retain_graph=True) via MeanBackward0 → PowBackward0 → AccumulateGrad: varibale.grad accumulated [[0.5, 1], [1.5, 2]] → [[1, 2], [3, 4]]
    A failed call says which nodes it reached, and its error, unless that is `cell_error`
    (the cell's own error, "ename: evalue", printed above it already)."""
    line = backward_call(event)
    if event.error:
        return f"{line} {failure_text(event, max_nodes, cell_error)}"
    path = backward_path(event, max_nodes)
    if path:
        line += f" via {path}"
    if event.kind == "grad":
        return f"{line}: returned {returned_text(event)}" + _hooks_part(event)
    if not event.leaves:
        return f"{line}: no .grad changed" + _hooks_part(event)
    shown, rest = leaves_shown(event.leaves)
    return f"{line}: " + "; ".join([*(leaf_change_text(leaf) for leaf in shown), *([rest] if rest else [])]) + _hooks_part(event)


def failure_text(event: BackwardEvent, max_nodes: int, cell_error: str | None = None) -> str:
    """How a failed call ended: `reached A → B, then failed: RuntimeError: ...` (the nodes the
    engine had reached, when they were recorded; a predicted order is no claim and not given)."""
    error = event.error or ""
    if cell_error is not None and error.splitlines()[:1] == cell_error.splitlines()[:1]:
        what = f"failed with the {error.split(':', 1)[0]} above"
    else:
        what = f"failed: {error.splitlines()[0] if error else '?'}"
    if event.node_order == "exact" and event.nodes:
        return f"reached {backward_path(event, max_nodes)}, then {what}"
    if event.node_order == "exact" and not event.brief:
        return f"{what} (before any node ran)"
    return what


def leaf_change_text(leaf: LeafChange) -> str:
    """`x.grad fresh [1, 2]`; accumulated, with the value before: `x.grad accumulated [1, 2] → [2, 4]`."""
    name = f"{leaf.name}.grad{' (retained)' if leaf.retained else ''}"
    after = values_preview(leaf.after) if leaf.after is not None else f"norm {norm_text(leaf.norm)}"
    if leaf.accumulated and leaf.before is not None:
        return f"{name} accumulated {values_preview(leaf.before)} → {after}"
    return f"{name} {grad_kind(leaf)} {after}"


LEAVES_IN_FULL = 6  # grads a call's entry lists one by one; past that, the first LEAVES_SHOWN and a summary
LEAVES_SHOWN = 4


def leaves_shown(leaves: Sequence[LeafChange]) -> tuple[Sequence[LeafChange], str | None]:
    """The grads an entry lists one by one, and a line for the rest (a model's 300
    parameters: the first 4, then "and 296 more grads fresh: model.147.bias … model.0.weight,
    norms 1e-39 to 5.4"); the call's detail and --json have every one."""
    if len(leaves) <= LEAVES_IN_FULL:
        return leaves, None
    shown, rest = leaves[:LEAVES_SHOWN], leaves[LEAVES_SHOWN:]
    kinds = sorted({grad_kind(leaf) for leaf in rest})
    if len(kinds) > 1:
        accumulated = sum(1 for leaf in rest if leaf.accumulated)
        what = f"({len(rest) - accumulated:,} fresh, {accumulated:,} accumulated)"
    else:
        what = kinds[0]
    summary = f"and {counted(len(rest), 'more grad')} {what}: {rest[0].name} … {rest[-1].name}"
    norms = [leaf.norm for leaf in rest if isinstance(leaf.norm, (int, float))]
    not_finite = sum(1 for leaf in rest if isinstance(leaf.norm, str))
    if norms:
        summary += f", norms {number(min(norms))} to {number(max(norms))}"
    if not_finite:
        summary += f", {not_finite:,} not finite"
    return shown, summary


def returned_text(event: BackwardEvent) -> str:
    """What autograd.grad returned: the values; for a brief call (values not kept), how many and their norm."""
    grads = event.grads or ()
    if event.brief:
        return f"{counted(len(grads), 'grad')}, norm {norm_text(event.norm)}"
    return ", ".join(values_preview(g) for g in grads)


def norm_text(norm: float | str | None) -> str:
    return "not taken" if norm is None else number(norm)


def hook_text(hook: HookEffect) -> str:
    """hook on x changed its grad: norm 3.2 → 1"""
    if hook.changed:
        return f"hook on {hook.name} changed its grad: norm {norm_text(hook.norm_in)} → {norm_text(hook.norm_out)}"
    return f"hook on {hook.name} left its grad as it was (norm {norm_text(hook.norm_in)})"


def _hooks_part(event: BackwardEvent) -> str:
    return "".join(f"; {hook_text(hook)}" for hook in event.hooks)


MAX_ROOT_TEXT = 60  # characters of a root's expression shown in a call


def backward_call(event: BackwardEvent) -> str:
    """The call as it could have been written: v_out.backward(retain_graph=True); the root as
    the calling line wrote it where it is known (`(a * b).sum()`), else its name, else what it is."""
    root = event.root_text
    if len(root) > MAX_ROOT_TEXT:
        root = root[:MAX_ROOT_TEXT - 1] + ELLIPSIS
    args = []
    if event.gradient:
        args.append("gradient=" + ", ".join(values_preview(g) for g in event.gradient))
    if event.retain_graph:
        args.append("retain_graph=True")
    if event.create_graph:
        args.append("create_graph=True")
    if event.inputs:
        args.append("inputs=[" + ", ".join(event.inputs) + "]")
    if event.kind == "grad":
        return f"torch.autograd.grad({root}{', ' if args else ''}{', '.join(args)})"
    return f"{root}.backward({', '.join(args)})"


def backward_path(event: BackwardEvent, max_nodes: int) -> str:
    """The graph nodes in the order they ran, cut after `max_nodes` with the count."""
    total = event.nodes_total or len(event.nodes)
    count = f"more than {total:,}" if event.walk_cut else f"{total:,}"
    path = " → ".join(event.nodes[:max_nodes]) + (f" … ({count} nodes)" if total > max_nodes or event.walk_cut else "")
    if path and event.node_order == "predicted":
        path += " (order predicted, not recorded)"
    return path


def matrix_text(rows: Sequence[Sequence[float]], max_rows: int = 6, max_cols: int = 6) -> str:
    """A matrix as one line, long sides cut to their first and last entries: [[2, 0, …, 0], …]."""

    def cut(items: Sequence[Any], limit: int) -> list[Any]:
        if len(items) <= limit:
            return list(items)
        half = limit // 2
        return [*items[:half], ELLIPSIS, *items[-half:]]

    return preview_text([cut(row, max_cols) if row != ELLIPSIS else row for row in cut(rows, max_rows)])


def vjp_lines(event: BackwardEvent, detail: bool = True) -> list[str]:
    """The vector-Jacobian view of an event with a non-scalar root, one line per leaf:
    x.grad += vᵀ·J = [4, 0.4, 0.02, 0.002] ✓  (v = [...], J 4x4 = [[2, 0, 0, 0], ...]);
    without `detail`, the line stops before v and J."""
    view = event.jacobian
    if view is None:
        return []
    if view.note:
        return [f"vᵀ·J not shown: {view.note}"]
    v = preview_text(view.v)
    lines = []
    backward = event.kind == "backward"
    for leaf in view.leaves:
        size = f"{len(leaf.matrix)}x{len(leaf.matrix[0]) if leaf.matrix else 0}"
        target = f"{leaf.leaf}.grad" if backward else f"grad of {leaf.leaf}"
        check = {True: " ✓", False: " ✗ (differs from what the call wrote)", None: ""}[leaf.matches]
        line = f"{target} {'+=' if backward else '='} vᵀ·J = {preview_text(leaf.vjp)}{check}"
        lines.append(f"{line}  (v = {v}, J {size} = {matrix_text(leaf.matrix)})" if detail else line)
    return lines
