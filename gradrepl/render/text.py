"""Plain-text forms of the probe's data shared by every front end (the app, replay)."""

from __future__ import annotations

from typing import Any

ELLIPSIS = "…"


def number(value: Any) -> str:
    """A compact number: 1.5, 3, -0.25, 1e-08, True."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return {"nan": "nan", "inf": "inf", "-inf": "-inf"}[repr(value)]
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"{number(value[0])}{'+' if value[1] >= 0 else '-'}{number(abs(value[1]))}j"
    return str(value)


def preview_text(preview: Any) -> str:
    """Nested preview lists as one line: [[1.5, 3], [4.5, 6]]."""
    if isinstance(preview, list):
        return "[" + ", ".join(preview_text(item) for item in preview) + "]"
    if preview == ELLIPSIS:
        return ELLIPSIS
    return number(preview)


def values_preview(values: dict[str, Any] | None) -> str:
    """A probe values dict ({"preview": ...}) as one line; "None" for no values."""
    if values is None:
        return "None"
    return preview_text(values.get("preview"))


def backward_line(event: dict[str, Any], max_nodes: int = 6) -> str:
    """One backward event in one line:
    v_out.backward(retain_graph=True) via MeanBackward0 → PowBackward0 → AccumulateGrad: varibale.grad accumulated [[1, 2], [3, 4]]"""
    line = backward_call(event)
    path = backward_path(event, max_nodes)
    if path:
        line += f" via {path}"
    if event.get("error"):
        return f"{line}: failed, {event['error'].splitlines()[0]}"
    if event.get("kind") == "grad":
        return f"{line}: returned " + ", ".join(values_preview(g) for g in event.get("grads") or [])
    leaves = event.get("leaves") or []
    if not leaves:
        return f"{line}: no .grad changed"
    changes = [
        f"{leaf.get('name')}.grad {'accumulated' if leaf.get('accumulated') else 'fresh'} {values_preview(leaf.get('after'))}"
        for leaf in leaves
    ]
    return f"{line}: " + "; ".join(changes)


def backward_call(event: dict[str, Any]) -> str:
    """The call as it could have been written: v_out.backward(retain_graph=True)."""
    roots = event.get("roots") or []
    root = ", ".join(r.get("name") or f"<{r.get('description')}>" for r in roots) or "?"
    args = []
    gradient = event.get("gradient")
    if gradient:
        args.append("gradient=" + ", ".join(values_preview(g) for g in gradient))
    if event.get("retain_graph"):
        args.append("retain_graph=True")
    if event.get("create_graph"):
        args.append("create_graph=True")
    if event.get("inputs"):
        args.append("inputs=[" + ", ".join(event["inputs"]) + "]")
    if event.get("kind") == "grad":
        return f"torch.autograd.grad({root}{', ' if args else ''}{', '.join(args)})"
    return f"{root}.backward({', '.join(args)})"


def backward_path(event: dict[str, Any], max_nodes: int) -> str:
    """The graph nodes in the order they ran, cut after `max_nodes` with the count."""
    nodes = event.get("nodes") or []
    total = event.get("nodes_total") or len(nodes)
    return " → ".join(nodes[:max_nodes]) + (f" … ({total} nodes)" if total > max_nodes else "")


def matrix_text(rows: list[list[float]], max_rows: int = 6, max_cols: int = 6) -> str:
    """A matrix as one line, long sides cut to their first and last entries: [[2, 0, …, 0], …]."""

    def cut(items: list[Any], limit: int) -> list[Any]:
        if len(items) <= limit:
            return items
        half = limit // 2
        return [*items[:half], ELLIPSIS, *items[-half:]]

    return preview_text([cut(list(row), max_cols) if row != ELLIPSIS else row for row in cut(rows, max_rows)])


def vjp_lines(event: dict[str, Any], detail: bool = True) -> list[str]:
    """The vector-Jacobian view of an event with a non-scalar root, one line per leaf:
    x.grad += vᵀ·J = [4, 0.4, 0.02, 0.002] ✓  (v = [...], J 4x4 = [[2, 0, 0, 0], ...]);
    without `detail`, the line stops before v and J."""
    view = event.get("jacobian")
    if not view:
        return []
    if view.get("note"):
        return [f"vᵀ·J not shown: {view['note']}"]
    v = preview_text(view.get("v") or [])
    lines = []
    for leaf in view.get("leaves") or ():
        matrix = leaf.get("matrix") or []
        size = f"{len(matrix)}x{len(matrix[0]) if matrix else 0}"
        target = f"{leaf.get('leaf')}.grad" if event.get("kind") == "backward" else f"grad of {leaf.get('leaf')}"
        operator = "+=" if event.get("kind") == "backward" else "="
        check = {True: " ✓", False: " ✗ (differs from what the call wrote)", None: ""}[leaf.get("matches")]
        line = f"{target} {operator} vᵀ·J = {preview_text(leaf.get('vjp') or [])}{check}"
        lines.append(f"{line}  (v = {v}, J {size} = {matrix_text(matrix)})" if detail else line)
    return lines
