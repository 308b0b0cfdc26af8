"""The probe's autograd graph (kernel/graph.py) as a tree, for every front end.

`graph_rows` walks the graph once, the way both the app's collapsible tree and the command
line's text tree draw it: a node, the tensors it saved, then the nodes it passes gradients
to. A node met a second time is a reference to its number, so a DAG stays linear in size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

MAX_TEXT_DEPTH = 24  # levels of guides drawn in text; deeper rows say their depth

RowKind = Literal["node", "saved", "ref", "cut"]


@dataclass(frozen=True)
class GraphRow:
    depth: int
    kind: RowKind
    text: str
    warn: bool = False  # a saved tensor modified in place: backward through this node will fail
    number: int | None = None  # the node's number (for node and ref rows)
    last: bool = True  # the last row of its parent (for drawing the tree's guides)
    has_children: bool = False


def shape_label(shape: list[int] | None, dtype: str | None = None) -> str:
    text = "x".join(str(size) for size in shape or []) or "scalar"
    return f"{text} {dtype}" if dtype else text


def node_label(node: dict[str, Any], number: int) -> str:
    text = f"#{number} {node.get('name')}"
    leaf = node.get("leaf")
    if leaf is not None:
        who = leaf.get("name") or "an unnamed leaf"
        return f"{text} → {who} (leaf, {shape_label(leaf.get('shape'), leaf.get('dtype'))})"
    values = node.get("values") or {}
    if values:
        text += " (" + ", ".join(f"{key}={value}" for key, value in values.items()) + ")"
    if node.get("tensor"):
        text += f" → {node['tensor']}"
    unused = int(node.get("no_grad_inputs") or 0)
    if unused:
        text += f"  [{unused} input{'s' if unused != 1 else ''} without grad]"
    return text


def saved_label(entry: dict[str, Any]) -> tuple[str, bool]:
    """A saved tensor (or value) of a node, and whether it is a backward that will fail."""
    text = f"saved {entry.get('name')}"
    if "value" in entry:
        return f"{text} = {entry['value']}", False
    if "shape" in entry:
        text += f": {shape_label(entry.get('shape'), entry.get('dtype'))}"
    if entry.get("tensor"):
        text += f" ({entry['tensor']})"
    state = entry.get("state")
    if state == "modified":
        return f"{text}  ⚠ modified in place since it was saved (version {entry.get('version')}, saved at {entry.get('saved_version')})", True
    if state == "freed":
        return f"{text}  freed by an earlier backward (pass retain_graph=True to keep it)", False
    if state == "unreadable":
        return f"{text}  not readable: {entry.get('detail')}", False
    return text, False


def graph_rows(graph: dict[str, Any]) -> list[GraphRow]:
    nodes: list[dict[str, Any]] = graph.get("nodes") or []
    rows: list[GraphRow] = []
    drawn: set[int] = set()
    # Depth first with an explicit stack: a 10,000-node chain is as deep as it is long.
    stack: list[tuple[int, int, bool]] = [(0, 0, True)] if nodes else []
    while stack:
        number, depth, last = stack.pop()
        if number < 0 or number >= len(nodes):
            rows.append(GraphRow(depth, "cut", "… the graph goes on past what is shown", last=last))
            continue
        if number in drawn:
            rows.append(GraphRow(depth, "ref", f"#{number} {nodes[number].get('name')} (drawn above)",
                                 number=number, last=last))
            continue
        drawn.add(number)
        node = nodes[number]
        saved = node.get("saved") or []
        children = list(node.get("next") or [])
        rows.append(GraphRow(depth, "node", node_label(node, number), number=number, last=last,
                             has_children=bool(saved or children)))
        for index, entry in enumerate(saved):
            text, warn = saved_label(entry)
            rows.append(GraphRow(depth + 1, "saved", text, warn=warn, last=index == len(saved) - 1 and not children))
        for index in reversed(range(len(children))):
            stack.append((children[index], depth + 1, index == len(children) - 1))
    not_shown = max(int(graph.get("total") or 0) - len(drawn), 0)
    if not_shown:
        more = "at least " if graph.get("walk_cut") else ""
        rows.append(GraphRow(0, "cut", f"… {more}{not_shown:,} more nodes not shown "
                                       f"(the first {len(nodes)} of {int(graph.get('total') or 0):,} are)"))
    return rows


def graph_title(graph: dict[str, Any]) -> str:
    name = graph.get("root")
    if graph.get("error"):
        return f"{name}: {graph['error']}"
    shape = shape_label(graph.get("shape"), graph.get("dtype"))
    if not graph.get("nodes"):
        if graph.get("is_leaf") and graph.get("requires_grad"):
            why = "a leaf: backward accumulates into its .grad"
        elif not graph.get("requires_grad"):
            why = "does not require grad: no graph was recorded"
        else:
            why = "no grad_fn"
        return f"{name} ({shape}) has no autograd graph: {why}"
    total = int(graph.get("total") or 0)
    title = f"{name} ({shape}): {total:,} node{'s' if total != 1 else ''}"
    modified = modified_count(graph)
    if modified:
        them = "tensors were" if modified != 1 else "tensor was"
        title += (f"\n⚠ {modified} saved {them} modified in place after the forward pass saved "
                  f"{'them' if modified != 1 else 'it'}: backward through this graph will fail")
    return title


def modified_count(graph: dict[str, Any]) -> int:
    return sum(1 for node in graph.get("nodes") or () for saved in node.get("saved") or () if saved.get("state") == "modified")


def graph_text(graph: dict[str, Any]) -> str:
    """The graph as an indented text tree with box-drawing guides."""
    lines = [graph_title(graph)]
    open_levels: list[bool] = []  # per depth: does a later sibling follow (draw a guide)?
    for row in graph_rows(graph):
        del open_levels[row.depth:]
        shown = open_levels[1:]
        if len(shown) > MAX_TEXT_DEPTH:  # a long chain: say how deep instead of drawing every level
            guides = f"[depth {row.depth}] " + "".join("│  " if more else "   " for more in shown[-MAX_TEXT_DEPTH:])
        else:
            guides = "".join("│  " if more else "   " for more in shown)
        if row.depth == 0:
            branch = ""
        else:
            branch = "└─ " if row.last else "├─ "
        lines.append(f"{guides}{branch}{row.text}")
        while len(open_levels) <= row.depth:
            open_levels.append(False)
        open_levels[row.depth] = not row.last
    return "\n".join(lines)
