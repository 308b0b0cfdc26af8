"""The words of a graph's drawing: a node, a saved tensor, a run, a reference, the title."""

from __future__ import annotations

from collections.abc import Sequence

from gradrepl.protocol import Graph, GraphNode, SavedTensor


def shape_label(shape: Sequence[int] | None, dtype: str | None = None) -> str:
    text = "x".join(str(size) for size in shape or []) or "scalar"
    return f"{text} {dtype}" if dtype else text


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def node_label(node: GraphNode, number: int) -> str:
    repeat = node.repeat
    if repeat is not None:
        return f"#{number} × {repeat.count:,} {node.name}  ({plural(repeat.nodes, 'node')})"
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
    if node.note:
        text += f"  ({node.note})"
    return text


def reference_label(node: GraphNode, number: int, below: bool, times: int = 1, other_iteration: bool = False) -> str:
    where = "another iteration" if other_iteration else "drawn below" if below else "drawn above"
    name = f"× {node.repeat.count:,} {node.name}" if node.repeat is not None else node.name
    who = (node.leaf.name or "an unnamed leaf") if node.leaf is not None else node.tensor
    if who:
        name += f" → {who}"
    again = f", {times:,} inputs" if times > 1 else ""
    return f"#{number} {name} ({where}{again})"


def gap_label(run: GraphNode) -> str:
    repeat = run.repeat
    if repeat is None:
        return "…"
    between = max(repeat.count - 2, 0)
    return f"… {plural(between, 'iteration')} alike between the first and the last ({plural(repeat.hidden, 'node')})"


def saved_head(entry: SavedTensor) -> str:
    """"saved self: 3 float32 (a)": what a node saved, without its state."""
    text = f"saved {entry.name}"
    if entry.shape is not None:
        text += f": {shape_label(entry.shape, entry.dtype)}"
    if entry.tensor:
        text += f" ({entry.tensor})"
    return text


def saved_label(entry: SavedTensor) -> tuple[str, bool]:
    """A saved tensor of a node, and whether it is a backward that will fail."""
    text = saved_head(entry)
    if entry.state == "modified":
        return f"{text}  ⚠ modified in place since it was saved (version {entry.version}, saved at {entry.saved_version})", True
    if entry.state == "freed":
        return f"{text}  freed by an earlier backward (pass retain_graph=True to keep it)", False
    if entry.state == "unreadable":
        return f"{text}  not readable: {entry.detail}", False
    return text, False


def modified_count(graph: Graph) -> int:
    return sum(1 for node in graph.nodes for saved in node.saved if saved.state == "modified")


def is_leaf_view(graph: Graph) -> bool:
    """A leaf that requires grad: its screen lists the graphs that use it."""
    return graph.error is None and not graph.nodes and graph.is_leaf and graph.requires_grad


def users_label(graph: Graph) -> str:
    users = graph.used_by or ()
    if not users:
        return "no named tensor's graph uses it yet"
    return f"used by the graph of {', '.join(users)}" if len(users) <= 12 else (
        f"used by the graphs of {len(users):,} named tensors: {', '.join(users[:12])}, …")


def graph_title(graph: Graph) -> str:
    name = graph.root
    if graph.error:
        return f"{name}: {graph.error}"
    shape = shape_label(graph.shape, graph.dtype)
    if not graph.nodes:
        if graph.is_leaf and graph.requires_grad:
            why = "a leaf: backward accumulates into its .grad"
            if graph.used_by is not None:
                why += f"\n{users_label(graph)}"
        elif not graph.requires_grad:
            why = "does not require grad: no graph was recorded"
        else:
            why = "no grad_fn"
        return f"{name} ({shape}) has no autograd graph: {why}"
    total = graph.total
    title = f"{name} ({shape}): {'more than ' if graph.walk_cut else ''}{plural(total, 'node')}"
    runs = sum(1 for node in graph.nodes if node.repeat is not None)
    if runs:
        title += f", {plural(runs, 'run')} of alike iterations folded"
    modified = modified_count(graph)
    if modified:
        them = "tensors were" if modified != 1 else "tensor was"
        title += (f"\n⚠ {modified} saved {them} modified in place after the forward pass saved "
                  f"{'them' if modified != 1 else 'it'}: backward through this graph will fail")
    return title


def not_shown(graph: Graph) -> int:
    """Nodes of the graph neither described nor counted in a run."""
    described = sum(1 for node in graph.nodes if node.repeat is None)
    in_runs = sum(node.repeat.hidden for node in graph.nodes if node.repeat is not None)
    return max(graph.total - described - in_runs, 0)
