"""The autograd graph view: the probe's plain data (in this process) and its text tree."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gradrepl.inkernel import graph as graph_module
from gradrepl.inkernel import node_order, walker
from gradrepl.inkernel.graph import graph_of
from gradrepl.protocol import Graph
from gradrepl.render.graph import graph_rows, graph_text
from gradrepl.render.graph_labels import modified_count, not_shown


def graph(namespace: dict[str, Any], name: str) -> Graph:
    return graph_of(torch, list(namespace.items()), name)


def test_the_seeds_view_graph_names_the_leaf_and_its_intermediate() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    y = 2 * x
    z = y.view(2, 2)
    # A chain: each node's input follows it at the same depth; what it saved is under it.
    assert graph_text(graph({"x": x, "y": y, "z": z}, "z")) == (
        "z (2x2 float32): 3 nodes\n"
        "#0 ViewBackward0 → z\n"
        "#1 MulBackward0 → y  [1 input without grad]\n"
        "└─ saved other: scalar int64\n"
        "#2 AccumulateGrad → x (leaf, 4 float32)"
    )


def test_a_node_reached_twice_is_drawn_once_then_referred_to() -> None:
    x = torch.ones(3, requires_grad=True)
    w = x * 2
    u = w + w.exp()
    data = graph({"x": x, "w": w, "u": u}, "u")
    # The chain goes on through the input that leads furthest (w.exp(), then w); nodes are
    # numbered as drawn, and the Add's other input, w, is a reference to it further down.
    assert [n.name for n in data.nodes] == ["AddBackward0", "ExpBackward0", "MulBackward0", "AccumulateGrad"]
    assert [n.next for n in data.nodes] == [(2, 1), (2,), (3,), ()]
    rows = graph_rows(data)
    assert [r.kind for r in rows if r.number == 2] == ["ref", "node"]
    assert sum(1 for r in rows if r.kind == "node") == 4  # linear in the nodes, not in the paths
    assert graph_text(data).splitlines()[1:3] == ["#0 AddBackward0 (alpha=1) → u", "└─ #2 MulBackward0 → w (drawn below)"]


def test_a_saved_tensor_modified_in_place_is_marked_with_its_versions() -> None:
    x = torch.ones(3, requires_grad=True)
    a = x * 3
    b = (a.sin() * a).sum()
    a.add_(1)
    data = graph({"x": x, "a": a, "b": b}, "b")
    marked = [(n.name, s.name, s.tensor, s.version, s.saved_version)
              for n in data.nodes for s in n.saved if s.state == "modified"]
    assert marked == [("MulBackward0", "other", "a", 1, 0), ("SinBackward0", "self", "a", 1, 0)]
    text = graph_text(data)
    assert "2 saved tensors were modified in place" in text
    assert "saved self: 3 float32 (a)  ⚠ modified in place since it was saved (version 1, saved at 0)" in text
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        b.backward()  # what the mark predicts


def test_saved_tensors_freed_by_a_backward_say_so() -> None:
    x = torch.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    saved = graph({"x": x, "y": y}, "y").nodes[1].saved
    assert {s.name: s.state for s in saved} == {"other": "freed", "self": "freed"}
    assert "freed by an earlier backward" in graph_text(graph({"x": x, "y": y}, "y"))


def test_module_parameters_label_the_leaves() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    loss = model(torch.randn(5, 3)).pow(2).mean()
    named = {"loss": loss, **{f"model.{k}": v for k, v in model.named_parameters()}}
    leaves = [n.leaf.name for n in graph(named, "loss").nodes if n.leaf is not None]
    assert sorted(leaves) == ["model.0.bias", "model.0.weight", "model.2.bias", "model.2.weight"]


def test_a_huge_graph_is_cut_with_a_count_and_keeps_every_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_module, "MAX_GRAPH_NODES", 50)
    leaves = [torch.ones(1, requires_grad=True) for _ in range(100)]
    c = leaves[0]
    for index, leaf in enumerate(leaves[1:]):
        c = (c * leaf).pow(index % 13 + 2)  # no two steps alike: nothing to fold
    named = {"c": c, **{f"w[{i}]": leaf for i, leaf in enumerate(leaves)}}
    data = graph(named, "c")
    assert data.total == 298 and not data.walk_cut
    assert sorted(n.leaf.name for n in data.nodes if n.leaf is not None) == sorted(f"w[{i}]" for i in range(100))
    assert sum(1 for n in data.nodes if n.leaf is None) <= 50
    text = graph_text(data)
    assert "… leaves reached through nodes not shown:" in text
    assert "AccumulateGrad → w[0] (leaf, 1 float32)" in text  # the deepest leaf, however far down
    assert text.endswith(f"… {298 - len(data.nodes):,} more nodes not shown ({len(data.nodes)} of 298 are)")


def test_a_walk_past_its_limit_says_more_than_and_still_finds_the_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_module, "MAX_GRAPH_NODES", 10)
    monkeypatch.setattr(graph_module, "MAX_GRAPH_WALK", 100)
    x = torch.ones(1, requires_grad=True)
    c = x
    for _ in range(300):
        c = c + 1
    data = graph({"c": c, "x": x}, "c")
    assert data.walk_cut and data.total == 100
    text = graph_text(data)
    assert text.startswith("c (1 float32): more than 100 nodes")
    assert "… the graph goes on past what is shown" in text
    assert text.endswith("… leaves reached through nodes not shown:\n#4 AccumulateGrad → x (leaf, 1 float32)")


@pytest.mark.parametrize(
    ("make", "title"),
    [
        (lambda: torch.ones(2, requires_grad=True), "t (2 float32) has no autograd graph: a leaf"),
        (lambda: torch.ones(2), "t (2 float32) has no autograd graph: does not require grad"),
    ],
)
def test_tensors_without_a_graph_say_why(make, title: str) -> None:
    assert graph_text(graph({"t": make()}, "t")).startswith(title)


def test_an_unknown_name_is_an_error_not_an_exception() -> None:
    assert graph({"t": torch.ones(1)}, "nope").to_json() == {"root": "nope", "error": "no tensor named nope"}


def test_a_graph_exactly_as_big_as_the_walk_is_not_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_module, "MAX_GRAPH_WALK", 100)
    x = torch.ones(1, requires_grad=True)
    c = x
    for _ in range(99):
        c = c + 1  # 99 AddBackward0 nodes and x's AccumulateGrad
    data = graph({"c": c}, "c")
    assert (data.total, data.walk_cut) == (100, False)
    assert (graph({"d": c + 1}, "d").total, graph({"d": c + 1}, "d").walk_cut) == (100, True)


def recurrence(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    h = torch.ones(3, requires_grad=True)
    x = h
    for _ in range(steps):
        h = h * 1.01 + 0.5
    return x, h


def test_a_1000_step_recurrence_is_one_run_drawn_flat_down_to_its_leaf() -> None:
    x, h = recurrence(1000)
    data = graph({"h": h, "x": x}, "h")
    assert data.total == 2001  # as torch's graph has: 1,000 Add and Mul nodes and x's AccumulateGrad
    runs = [n for n in data.nodes if n.repeat is not None]
    assert [(n.name, n.repeat.count, n.repeat.period, n.repeat.nodes) for n in runs] == [
        ("AddBackward0 → MulBackward0", 1000, 2, 2000)]
    assert len(data.nodes) == 6 and not_shown(data) == 0  # every node described or counted in the run
    assert Graph.from_json(data.to_json()) == data
    text = graph_text(data)
    assert text.splitlines() == [
        "h (3 float32): 2,001 nodes, 1 run of alike iterations folded",
        "#0 × 1,000 AddBackward0 → MulBackward0  (2,000 nodes)",
        "└─ #1 AddBackward0 (alpha=1) → h  [1 input without grad]",  # one chain: the iterations feed each other
        "   #2 MulBackward0  [1 input without grad]",
        "   └─ saved other: scalar float64",
        "   … 998 iterations alike between the first and the last (1,996 nodes)",
        "   #3 AddBackward0 (alpha=1)  [1 input without grad]",
        "   #4 MulBackward0  [1 input without grad]",
        "   └─ saved other: scalar float64",
        "#5 AccumulateGrad → x (leaf, 3 float32)",
    ]


def test_a_long_chain_that_does_not_repeat_stays_as_wide_as_one_node() -> None:
    x = torch.ones(1, requires_grad=True)
    c = x
    for index in range(200):
        c = c.pow(index % 11 + 1) if index % 2 else c * (index + 2.0)
    rows = graph_rows(graph({"c": c, "x": x}, "c"))
    assert max(row.depth for row in rows) == 1  # saved tensors only; every node at depth 0
    assert rows[-1].text == "#200 AccumulateGrad → x (leaf, 1 float32)"


def test_a_recurrence_through_a_shared_weight_draws_the_weight_once() -> None:
    W = torch.randn(3, 3, requires_grad=True)
    s = torch.zeros(1, 3, requires_grad=True)
    r = s
    for _ in range(50):
        r = torch.tanh(r @ W)
    data = graph({"r": r, "W": W, "s": s}, "r")
    (run,) = [n for n in data.nodes if n.repeat is not None]
    # The first step saved r (named), the last saved s: those are drawn; the 48 between fold.
    assert (run.name, run.repeat.count) == ("TanhBackward0 → MmBackward0", 48)
    weight = [i for i, n in enumerate(data.nodes) if n.leaf is not None and n.leaf.name == "W"]
    assert len(weight) == 1
    rows = graph_rows(data)
    assert [r.kind for r in rows if r.number == weight[0]] == ["node", "ref", "ref", "ref"]
    assert not_shown(data) == 0


def test_a_named_tensor_or_a_modified_saved_tensor_inside_a_recurrence_is_not_folded_away() -> None:
    x = torch.ones(2, requires_grad=True)
    h = x * 1
    for index in range(40):
        if index == 20:
            middle = h
        if index == 30:
            changed = h
        h = h.sin()
    changed.add_(1)  # saved by the next SinBackward0: backward will fail there
    data = graph({"h": h, "middle": middle, "x": x}, "h")
    # 40 Sin nodes: the 9 above the modified one, it, 9 more, the one that saved middle, the one
    # that made it, the 19 below.
    assert [n.repeat.count for n in data.nodes if n.repeat is not None] == [9, 9, 19]
    assert modified_count(data) == 1
    text = graph_text(data)
    assert "#3 SinBackward0\n└─ saved self: 2 float32  ⚠ modified in place since it was saved (version 1, saved at 0)" in text
    assert "#7 SinBackward0\n└─ saved self: 2 float32 (middle)\n#8 SinBackward0 → middle\n" in text


def test_a_leaf_says_which_graphs_use_it() -> None:
    x, h = recurrence(10)
    y = (x * 2).sum()
    other = torch.ones(2, requires_grad=True) * 3
    named = {"h": h, "x": x, "y": y, "other": other, "plain": torch.ones(2)}
    assert graph(named, "x").used_by == ("h", "y")
    assert graph(named, "plain").used_by is None
    assert graph_text(graph(named, "x")).splitlines() == [
        "x (3 float32) has no autograd graph: a leaf: backward accumulates into its .grad",
        "used by the graph of h, y",
    ]
    lonely = torch.ones(1, requires_grad=True)
    assert graph({"lonely": lonely, **named}, "lonely").used_by == ()


def forward_ad_primal(x: torch.Tensor) -> torch.Tensor:
    """A tensor whose grad_fn is a C++ node without a Python class: torch::autograd::Identity."""
    import torch.autograd.forward_ad as fw

    with fw.dual_level():
        return fw.unpack_dual(fw.make_dual(x * 2, torch.ones(3))).primal


def test_a_cpp_node_is_named_by_torch_not_as_cppfunction() -> None:
    x = torch.ones(3, requires_grad=True)
    p = forward_ad_primal(x)
    assert type(p.grad_fn).__name__ == "CppFunction" and p.grad_fn.name() == "torch::autograd::Identity"
    names = [n.name for n in graph({"p": p, "x": x}, "p").nodes]
    assert names == ["torch::autograd::Identity", "ViewBackward0", "MulBackward0", "AccumulateGrad"]
    # The backward log's node lists name it the same way, recorded as it ran and predicted.
    loss = p.sum()
    walked = walker.walk([loss.grad_fn], 100)
    recorder = node_order.RunRecorder(walked)
    try:
        loss.backward()
    finally:
        recorder.stop()
    assert recorder.node_names(10) == ["SumBackward0", *names]
    assert node_order.predicted_order(walked, [loss.grad_fn], 10) == recorder.node_names(10)
