"""Runs of alike iterations (inkernel/repeats.py) and the chain layout (protocol/graph_layout.py)
on graphs built here as protocol nodes: no kernel, no torch."""

from __future__ import annotations

from gradrepl.inkernel.repeats import MIN_ITERATIONS, bound, fold_repeats
from gradrepl.protocol import Graph, GraphLeaf, GraphNode, GraphRepeat, SavedTensor
from gradrepl.protocol.graph_layout import lay_out
from gradrepl.render.graph import graph_rows, graph_text
from gradrepl.render.graph_labels import not_shown

SELF = SavedTensor("self", "ok", (3,), "float32")


def leaf(name: str) -> GraphNode:
    return GraphNode("AccumulateGrad", leaf=GraphLeaf(name, (3,), "float32"))


def node(name: str, *inputs: int, saved: tuple[SavedTensor, ...] = (), tensor: str | None = None) -> GraphNode:
    return GraphNode(name, tensor=tensor, saved=saved, next=inputs)


def chain(names: list[str], saved: dict[int, tuple[SavedTensor, ...]] | None = None) -> list[GraphNode]:
    """names[0] → names[1] → … → the leaf x."""
    saved = saved or {}
    nodes = [node(name, index + 1, saved=saved.get(index, ())) for index, name in enumerate(names)]
    return [*nodes, leaf("x")]


def as_graph(nodes: tuple[GraphNode, ...] | list[GraphNode], total: int) -> Graph:
    return Graph("h", (3,), "float32", True, False, tuple(nodes), total)


def runs(nodes: tuple[GraphNode, ...]) -> list[tuple[str, int, int, int]]:
    return [(n.name, n.repeat.count, n.repeat.period, n.repeat.nodes) for n in nodes if n.repeat is not None]


def check_numbers(nodes: tuple[GraphNode, ...]) -> None:
    """Every input and every iteration member is a node of the graph or UNDESCRIBED."""
    for n in nodes:
        assert all(-1 <= child < len(nodes) for child in n.next)
        if n.repeat is not None:
            assert all(0 <= member < len(nodes) for member in (*n.repeat.first, *n.repeat.last))


def test_a_period_two_pattern_folds_into_one_run_with_its_first_and_last_iteration() -> None:
    built = chain(["Add", "Mul"] * 6)
    folded = fold_repeats(built)
    assert runs(folded) == [("Add → Mul", 6, 2, 12)]
    run = folded[0]
    assert run.repeat == GraphRepeat(6, 2, 12, (1, 2), (3, 4)) and run.next == (5,)
    assert [n.name for n in folded] == ["Add → Mul", "Add", "Mul", "Add", "Mul", "AccumulateGrad"]
    assert folded[2].next == (0,)  # the first iteration goes on into the run's next iteration
    assert folded[4].next == (5,)  # the last one into what follows the run
    assert not_shown(as_graph(folded, 13)) == 0
    assert graph_text(as_graph(folded, 13)).splitlines()[1:] == [
        "#0 × 6 Add → Mul  (12 nodes)",
        "└─ #1 Add",
        "   #2 Mul",
        "   … 4 iterations alike between the first and the last (8 nodes)",
        "   #3 Add",
        "   #4 Mul",
        "#5 AccumulateGrad → x (leaf, 3 float32)",
    ]


def test_too_few_iterations_are_not_folded() -> None:
    built = chain(["Add", "Mul"] * (MIN_ITERATIONS - 1))
    assert runs(fold_repeats(built)) == []
    assert [n.name for n in fold_repeats(built)] == [n.name for n in built]


def test_a_pattern_with_saved_tensors_folds_only_where_what_they_saved_is_alike() -> None:
    other = SavedTensor("self", "ok", (4,), "float32")
    modified = SavedTensor("self", "modified", (3,), "float32", None, 2, 1)
    named = SavedTensor("self", "ok", (3,), "float32", "w")
    saved = {index: (SELF,) for index in range(30)}
    saved.update({10: (other,), 20: (modified,), 25: (named,)})
    folded = fold_repeats(chain(["Sin"] * 30, saved))
    assert runs(folded) == [("Sin", 10, 1, 10), ("Sin", 9, 1, 9)]
    shown = [n.saved for n in folded if n.repeat is None and n.name == "Sin"]
    assert (other,) in shown and (modified,) in shown and (named,) in shown
    assert not_shown(as_graph(folded, 31)) == 0
    text = graph_text(as_graph(folded, 31))
    assert "saved self: 3 float32  ⚠ modified in place since it was saved (version 2, saved at 1)" in text


def test_a_recurrence_through_a_shared_node_draws_it_once_and_folds_the_rest() -> None:
    steps = 8
    # Mm_t(W, h_{t-1}): the chain goes on through its second input, which leads further.
    built = [node("Mm", steps, index + 1) for index in range(steps - 1)]
    built += [node("Mm", steps, steps + 1), leaf("W"), leaf("h0")]
    folded = fold_repeats(built)
    # W is drawn once (where the chain ends: W and h0 lead equally far, W is the first input);
    # the 7 Mm nodes above the last refer to it alike and fold.
    assert runs(folded) == [("Mm", 7, 1, 7)]
    assert sum(1 for n in folded if n.leaf is not None and n.leaf.name == "W") == 1
    check_numbers(folded)
    rows = graph_rows(as_graph(folded, len(built)))
    weight = next(i for i, n in enumerate(folded) if n.leaf is not None and n.leaf.name == "W")
    assert [r.kind for r in rows if r.number == weight] == ["ref", "ref", "node"]
    assert max(r.depth for r in rows) == 2  # the chain is flat: W's references under the nodes that use it


def test_a_dag_whose_iterations_share_nodes_folds_with_references_relative_to_each_iteration() -> None:
    # h_t = h_{t-1} + exp(h_{t-1}): Add_t(Add_{t-1}, Exp_t), Exp_t(Add_{t-1}); Add_0 → the leaf.
    steps = 10
    built: list[GraphNode] = []
    for t in range(steps):
        exp, below = 2 * t + 1, 2 * t + 2  # Add_t is node 2t
        built += [node("Add", below, exp), node("Exp", below)]
    built.append(leaf("x"))
    layout = lay_out(built)
    assert [e.depth for e in layout.entries if e.kind == "node"] == [0] * (2 * steps + 1)  # one flat chain
    folded = fold_repeats(built)
    assert runs(folded) == [("Add → Exp", steps, 2, 2 * steps)]
    check_numbers(folded)
    text = graph_text(as_graph(folded, len(built)))
    assert not_shown(as_graph(folded, len(built))) == 0
    # Each Add's first input is the Add below, which is also where its Exp goes on: a
    # reference, to the next iteration in the first, to what follows the run in the last.
    assert text.splitlines()[1:] == [
        "#0 × 10 Add → Exp  (20 nodes)",
        "└─ #1 Add",
        "   └─ #0 × 10 Add → Exp (another iteration)",
        "   #2 Exp",
        "   … 8 iterations alike between the first and the last (16 nodes)",
        "   #3 Add",
        "   └─ #5 AccumulateGrad → x (drawn below)",
        "   #4 Exp",
        "#5 AccumulateGrad → x (leaf, 3 float32)",
    ]


def test_a_node_another_part_of_the_graph_uses_breaks_the_run_there() -> None:
    built = chain(["Sin"] * 20)
    # A node outside the chain (the root's second input) uses Sin #12 too.
    built[0] = node("Sin", 1, len(built))
    built.append(node("Cos", 12))
    folded = fold_repeats(built)
    # The root (which also feeds Cos) and Sin #12 (which Cos uses) are drawn; the 11 and the 7 between fold.
    assert [n.repeat.count for n in folded if n.repeat is not None] == [11, 7]
    check_numbers(folded)
    cos = next(n for n in folded if n.name == "Cos")
    target = folded[cos.next[0]]
    assert target.name == "Sin" and target.repeat is None  # the node Cos uses is drawn, not folded away


def test_names_that_differ_are_never_folded() -> None:
    built = [node("Mul", i + 1, tensor=f"t{i}") for i in range(12)] + [leaf("x")]
    assert runs(fold_repeats(built)) == []


def test_bound_keeps_the_first_nodes_every_leaf_and_whole_runs() -> None:
    built = [node("Mul", i + 1, 100 + i) if i < 99 else node("Mul", 100 + i) for i in range(100)]
    built = [replace_values(n, i) for i, n in enumerate(built)] + [leaf(f"w{i}") for i in range(100)]
    kept = bound(built, 20)
    check_numbers(kept)
    assert sum(1 for n in kept if n.leaf is None) == 20 - sum(1 for n in built[:20] if n.leaf is not None)
    assert sorted(n.leaf.name for n in kept if n.leaf is not None) == sorted(f"w{i}" for i in range(100))
    assert kept[19].next[0] == -1  # the chain goes on past what is described

    folded = fold_repeats(chain(["Add", "Mul"] * 30))
    assert bound(folded, 1) == folded[:1] + folded[1:5] + folded[5:]  # the run's iterations stay with it


def replace_values(n: GraphNode, index: int) -> GraphNode:
    from dataclasses import replace

    return replace(n, values=(("exponent", str(index)),))  # no two alike


def test_a_graph_without_runs_or_users_loads_from_old_json() -> None:
    old = {"root": "y", "shape": [2], "dtype": "float32", "requires_grad": True, "is_leaf": False,
           "nodes": [{"name": "MulBackward0", "tensor": "y", "saved": [], "values": {}, "next": [1], "no_grad_inputs": 0},
                     {"name": "AccumulateGrad", "tensor": None, "saved": [], "values": {}, "next": [],
                      "no_grad_inputs": 0, "leaf": {"name": "x", "shape": [2], "dtype": "float32"}}],
           "total": 2, "described": 2, "walk_cut": False}
    graph = Graph.from_json(old)
    assert all(n.repeat is None for n in graph.nodes) and graph.used_by is None
    assert graph.to_json() == old
    folded = as_graph(fold_repeats(chain(["Add", "Mul"] * 6)), 13)
    assert Graph.from_json(folded.to_json()) == folded
