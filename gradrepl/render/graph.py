"""The probe's autograd graph (protocol.Graph) as a tree, for every front end.

`graph_rows` walks the graph once, the way both the app's collapsible tree and the command
line's text tree draw it: a node, the tensors it saved, then the nodes it passes gradients
to. A node met a second time is a reference to its number, so a DAG stays linear in size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gradrepl.protocol import Graph, GraphNode, SavedTensor

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


def shape_label(shape: Sequence[int] | None, dtype: str | None = None) -> str:
    text = "x".join(str(size) for size in shape or []) or "scalar"
    return f"{text} {dtype}" if dtype else text


def node_label(node: GraphNode, number: int) -> str:
    text = f"#{number} {node.name}"
    leaf = node.leaf
    if leaf is not None:
        who = leaf.name or "an unnamed leaf"
        return f"{text} → {who} (leaf, {shape_label(leaf.shape, leaf.dtype)})"
    if node.values:
        text += " (" + ", ".join(f"{key}={value}" for key, value in node.values) + ")"
    if node.tensor:
        text += f" → {node.tensor}"
    unused = node.no_grad_inputs
    if unused:
        text += f"  [{unused} input{'s' if unused != 1 else ''} without grad]"
    return text


def saved_label(entry: SavedTensor) -> tuple[str, bool]:
    """A saved tensor of a node, and whether it is a backward that will fail."""
    text = f"saved {entry.name}"
    if entry.shape is not None:
        text += f": {shape_label(entry.shape, entry.dtype)}"
    if entry.tensor:
        text += f" ({entry.tensor})"
    if entry.state == "modified":
        return f"{text}  ⚠ modified in place since it was saved (version {entry.version}, saved at {entry.saved_version})", True
    if entry.state == "freed":
        return f"{text}  freed by an earlier backward (pass retain_graph=True to keep it)", False
    if entry.state == "unreadable":
        return f"{text}  not readable: {entry.detail}", False
    return text, False


def graph_rows(graph: Graph) -> list[GraphRow]:
    nodes = graph.nodes
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
            rows.append(GraphRow(depth, "ref", f"#{number} {nodes[number].name} (drawn above)",
                                 number=number, last=last))
            continue
        drawn.add(number)
        node = nodes[number]
        saved = node.saved
        children = node.next
        rows.append(GraphRow(depth, "node", node_label(node, number), number=number, last=last,
                             has_children=bool(saved or children)))
        for index, entry in enumerate(saved):
            text, warn = saved_label(entry)
            rows.append(GraphRow(depth + 1, "saved", text, warn=warn, last=index == len(saved) - 1 and not children))
        for index in reversed(range(len(children))):
            stack.append((children[index], depth + 1, index == len(children) - 1))
    not_shown = max(graph.total - len(drawn), 0)
    if not_shown:
        more = "at least " if graph.walk_cut else ""
        rows.append(GraphRow(0, "cut", f"… {more}{not_shown:,} more nodes not shown "
                                       f"(the first {len(nodes)} of {graph.total:,} are)"))
    return rows


def graph_title(graph: Graph) -> str:
    name = graph.root
    if graph.error:
        return f"{name}: {graph.error}"
    shape = shape_label(graph.shape, graph.dtype)
    if not graph.nodes:
        if graph.is_leaf and graph.requires_grad:
            why = "a leaf: backward accumulates into its .grad"
        elif not graph.requires_grad:
            why = "does not require grad: no graph was recorded"
        else:
            why = "no grad_fn"
        return f"{name} ({shape}) has no autograd graph: {why}"
    total = graph.total
    title = f"{name} ({shape}): {total:,} node{'s' if total != 1 else ''}"
    modified = modified_count(graph)
    if modified:
        them = "tensors were" if modified != 1 else "tensor was"
        title += (f"\n⚠ {modified} saved {them} modified in place after the forward pass saved "
                  f"{'them' if modified != 1 else 'it'}: backward through this graph will fail")
    return title


def modified_count(graph: Graph) -> int:
    return sum(1 for node in graph.nodes for saved in node.saved if saved.state == "modified")


def graph_text(graph: Graph) -> str:
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
