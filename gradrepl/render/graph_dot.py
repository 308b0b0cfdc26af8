"""The probe's autograd graph as Graphviz DOT (`gradrepl graph --dot`), for a picture: render
it with `dot -Tsvg` (graphviz is only needed to draw it, not to write it).

Each node is drawn once, however many nodes pass it a gradient (an edge from each); edges go
the way gradients flow, from the root down to the leaves. A node shows its name, the tensor
you named, the values and tensors it saved, a saved tensor modified in place in red (the
backward that will fail) and one freed by an earlier backward in grey. A run of alike
iterations is one node; its iterations' edges to nodes outside it are drawn dashed from it.
A leaf (the tensor you named, with no graph of its own) is drawn with the graphs that use it.
"""

from __future__ import annotations

from gradrepl.protocol import Graph, GraphNode, SavedTensor
from gradrepl.render.graph_labels import graph_title, plural, saved_head, shape_label

LEAF_FILL = "#dcefdc"
RUN_FILL = "#e6e6f5"
WARN = "#c00000"
FREED = "#808080"


def quoted(text: str) -> str:
    """A DOT string: backslashes and quotes escaped, lines joined by DOT's \\n."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{body}"'


def _attributes(**values: str) -> str:
    return "[" + ", ".join(f"{key}={quoted(value)}" for key, value in values.items()) + "]"


def _saved_line(entry: SavedTensor) -> str:
    text = saved_head(entry)
    if entry.state == "modified":
        text += f" ⚠ modified in place (version {entry.version}, saved at {entry.saved_version})"
    elif entry.state == "freed":
        text += " freed"
    elif entry.state == "unreadable":
        text += " not readable"
    return text


def node_lines(node: GraphNode, number: int) -> list[str]:
    """What a node's box says, line by line."""
    repeat = node.repeat
    if repeat is not None:
        return [f"#{number} × {repeat.count:,} {node.name}", f"{plural(repeat.nodes, 'node')}, {repeat.period} per iteration"]
    lines = [f"#{number} {node.name}"]
    leaf = node.leaf
    if leaf is not None:
        lines.append(f"{leaf.name or 'an unnamed leaf'} (leaf, {shape_label(leaf.shape, leaf.dtype)})")
        return lines
    if node.tensor:
        lines.append(f"→ {node.tensor}")
    if node.values:
        lines.append(", ".join(f"{key}={value}" for key, value in node.values))
    lines.extend(_saved_line(entry) for entry in node.saved)
    if node.no_grad_inputs:
        lines.append(f"{plural(node.no_grad_inputs, 'input')} without grad")
    return lines


def _node_style(node: GraphNode) -> dict[str, str]:
    if node.repeat is not None:
        return {"style": "rounded,filled", "fillcolor": RUN_FILL, "peripheries": "2"}
    if node.leaf is not None:
        return {"style": "rounded,filled", "fillcolor": LEAF_FILL}
    states = {entry.state for entry in node.saved}
    if "modified" in states:
        return {"color": WARN, "fontcolor": WARN, "penwidth": "2"}
    if "freed" in states:
        return {"color": FREED, "fontcolor": FREED, "style": "rounded,dashed"}
    return {}


def graph_dot(graph: Graph) -> str:
    lines = [f"digraph {quoted(graph.root)} {{",
             f"  graph {_attributes(label=graph_title(graph), labelloc='t', fontname='Helvetica', rankdir='TB')};",
             f"  node {_attributes(shape='box', style='rounded', fontname='Helvetica', fontsize='11')};",
             f"  edge {_attributes(color='#555555')};"]
    if graph.error is None and not graph.nodes:
        lines.extend(_leaf_lines(graph))
    else:
        lines.extend(_graph_lines(graph))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _leaf_lines(graph: Graph) -> list[str]:
    if graph.error is not None:
        return []
    lines = [f"  leaf {_attributes(label=f'{graph.root} ({shape_label(graph.shape, graph.dtype)})', style='rounded,filled', fillcolor=LEAF_FILL)};"]
    for index, user in enumerate(graph.used_by or ()):
        lines.append(f"  user{index} {_attributes(label=user, shape='ellipse')};")
        lines.append(f"  user{index} -> leaf {_attributes(label='its graph reaches', style='dashed')};")
    return lines


def run_members(graph: Graph) -> dict[int, int]:
    """Each node of a run's first or last iteration -> the run's number (those are drawn as the run)."""
    owner: dict[int, int] = {}
    for number, node in enumerate(graph.nodes):
        if node.repeat is not None:
            for member in (*node.repeat.first, *node.repeat.last):
                owner.setdefault(member, number)
    # A run inside a run's iteration is drawn as the outer run too.
    for member, run in list(owner.items()):
        while run in owner and owner[run] != run:
            run = owner[run]
        owner[member] = run
    return owner


def _graph_lines(graph: Graph) -> list[str]:
    nodes = graph.nodes
    owner = run_members(graph)
    lines: list[str] = []
    edges: list[tuple[int, int | str, bool]] = []  # (from, to, drawn dashed: an edge of a run's iterations)
    cuts = 0
    for number, node in enumerate(nodes):
        if number in owner:
            continue
        lines.append(f"  n{number} {_attributes(label=chr(10).join(node_lines(node, number)), **_node_style(node))};")
        for child in node.next:
            if 0 <= child < len(nodes):
                edges.append((number, owner.get(child, child), False))
            else:
                edges.append((number, f"cut{cuts}", False))
                cuts += 1
        if node.repeat is not None:
            inside = {member for member, run in owner.items() if run == number}
            for member in sorted(inside):
                for child in nodes[member].next:
                    outside = owner.get(child, child) if 0 <= child < len(nodes) else None
                    if outside is not None and outside != number and outside not in node.next:
                        edges.append((number, outside, True))
    for index in range(cuts):
        lines.append(f"  cut{index} {_attributes(label='… not shown', shape='plaintext')};")
    seen: set[tuple[int, int | str, bool]] = set()
    for source, target, dashed in edges:
        if dashed and (source, target, dashed) in seen:
            continue
        seen.add((source, target, dashed))
        name = target if isinstance(target, str) else f"n{target}"
        style = f" {_attributes(style='dashed', label='each iteration')}" if dashed else ""
        lines.append(f"  n{source} -> {name}{style};")
    return lines
