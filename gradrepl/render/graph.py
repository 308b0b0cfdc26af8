"""The probe's autograd graph (protocol.Graph) as rows, for every front end.

`graph_rows` lays the graph out once (protocol.graph_layout: chains, each going on through the
input that leads furthest) the way both the app's collapsible tree and the command line's text
tree draw it: a node, the tensors it saved, its other inputs indented under it, then the next
node of its chain at the same depth, so a long chain stays as wide as one node. A node met a
second time is a reference to its number, so a DAG stays linear in size. A run of alike
iterations is one row, with its first and last iteration under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from gradrepl.protocol import Graph, GraphNode
from gradrepl.protocol.graph_layout import Entry, lay_out
from gradrepl.protocol.nonfinite import finite
from gradrepl.render.chain_rule import value_text
from gradrepl.render.graph_labels import (
    gap_label,
    graph_title,
    modified_count,
    node_label,
    not_shown,
    reference_label,
    saved_label,
    shape_label,
)

__all__ = ["GraphRow", "graph_rows", "graph_text", "graph_title", "modified_count", "row_guides", "shape_label"]

MAX_TEXT_DEPTH = 24  # levels of guides drawn in text; deeper rows say their depth

RowKind = Literal["node", "run", "saved", "grads", "ref", "cut", "gap", "note"]


@dataclass(frozen=True)
class GraphRow:
    depth: int
    kind: RowKind
    text: str
    warn: bool = False  # a saved tensor modified in place (backward will fail here), or gradients not finite
    number: int | None = None  # the node's number (for node, run and ref rows)
    last: bool = True  # no later sibling under the same parent (for drawing the tree's guides)
    has_children: bool = False
    continues: bool = False  # the next node of the chain of the node row before it at this depth


def graph_rows(graph: Graph, grads: bool = False) -> list[GraphRow]:
    """The rows of the drawing; with `grads`, under each node that a traced backward call ran,
    what it was given and passed on (the last such call's)."""
    nodes = graph.nodes
    rows: list[GraphRow] = []
    entries = lay_out(nodes).entries
    previous: Entry | None = None
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        # After a run's gap its last iteration goes on the chain of the first one.
        after_gap = previous is not None and previous.kind == "gap" and previous.depth == entry.depth
        previous = entry
        if entry.kind == "ref":
            times = 1
            while index < len(entries) and _same_reference(entries[index], entry):
                times += 1
                index += 1
            target = nodes[entry.number]
            rows.append(GraphRow(entry.depth, "ref", reference_label(target, entry.number, entry.below, times,
                                                                     entry.other_iteration), number=entry.number))
        elif entry.kind == "cut":
            rows.append(GraphRow(entry.depth, "cut", "… the graph goes on past what is shown"))
        elif entry.kind == "gap":
            # The iterations between the first and the last: the next steps of the first one's chain.
            goes_on = bool(rows) and rows[-1].depth >= entry.depth
            rows.append(GraphRow(entry.depth, "gap", gap_label(nodes[entry.number]), number=entry.number,
                                 continues=goes_on))
        elif entry.kind == "unreached":
            rows.append(GraphRow(0, "note", "… leaves reached through nodes not shown:"))
        else:
            node = nodes[entry.number]
            kind: RowKind = "run" if node.repeat is not None else "node"
            rows.append(GraphRow(entry.depth, kind, node_label(node, entry.number), number=entry.number,
                                 continues=entry.continues or after_gap))
            if grads and node.grad_outputs is not None:
                poisoned = not all(finite(g) for g in (*node.grad_outputs, *(node.grad_inputs or ())))
                rows.append(GraphRow(entry.depth + 1, "grads", grads_label(node), warn=poisoned))
            for saved in node.saved:
                text, warn = saved_label(saved)
                rows.append(GraphRow(entry.depth + 1, "saved", text, warn=warn))
    hidden = not_shown(graph)
    if hidden:
        more = "at least " if graph.walk_cut else ""
        rows.append(GraphRow(0, "note", f"… {more}{hidden:,} more nodes not shown "
                                        f"({graph.total - hidden:,} of {graph.total:,} are)"))
    return _with_guides(rows)


def _same_reference(entry: Entry, first: Entry) -> bool:
    return entry.kind == "ref" and (entry.number, entry.depth, entry.below, entry.other_iteration) == (
        first.number, first.depth, first.below, first.other_iteration)


def _with_guides(rows: list[GraphRow]) -> list[GraphRow]:
    """Each row told whether a later sibling follows under its parent (a chain's next nodes are
    the same sibling as its first) and whether rows are drawn under it."""
    follows: list[bool] = []  # per depth: a later sibling starts below, before any shallower row
    out = list(rows)
    for index in reversed(range(len(rows))):
        row = rows[index]
        depth = row.depth
        while len(follows) <= depth:
            follows.append(False)
        last = not follows[depth]
        if not row.continues:
            follows[depth] = True
        del follows[depth + 1:]
        has_children = index + 1 < len(rows) and rows[index + 1].depth > depth
        out[index] = replace(row, last=last, has_children=has_children)
    return out


def row_guides(rows: Sequence[GraphRow]) -> list[str]:
    """What is drawn left of each row's text: the guides of the rows above it (`│  ` where a
    later sibling follows, else blanks) and its own branch (`├─ ` / `└─ ` for a sibling, only
    a guide for the next node of a chain, nothing at depth 0). The same for any folding: a
    row's guides depend only on its ancestors, which are shown whenever it is."""
    guides: list[str] = []
    ancestors: list[GraphRow] = []  # the latest row at each depth above the current one
    for row in rows:
        del ancestors[row.depth:]
        shown = ancestors[1:]  # depth 0 draws no guide
        lead = "".join("   " if above.last else "│  " for above in shown[-MAX_TEXT_DEPTH:])
        if len(shown) > MAX_TEXT_DEPTH:  # a deep tree: say how deep instead of drawing every level
            lead = f"[depth {row.depth}] {lead}"
        if row.depth == 0:
            branch = ""
        elif row.continues:
            branch = "   " if row.last else "│  "
        else:
            branch = "└─ " if row.last else "├─ "
        guides.append(lead + branch)
        while len(ancestors) <= row.depth:
            ancestors.append(row)
        ancestors[row.depth] = row
    return guides


def grads_label(node: GraphNode) -> str:
    given = ", ".join(value_text(value) for value in node.grad_outputs or ())
    passed = ", ".join(value_text(value) for value in node.grad_inputs or () if value is not None)
    return f"grad in {given}" + (f" → out {passed}" if passed else "")


def graph_text(graph: Graph, grads: bool = False) -> str:
    """The graph as an indented text tree with box-drawing guides."""
    rows = graph_rows(graph, grads)
    lines = (f"{guides}{row.text}" for guides, row in zip(row_guides(rows), rows, strict=True))
    return "\n".join([graph_title(graph), *lines])
