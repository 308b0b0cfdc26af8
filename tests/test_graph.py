"""The autograd graph view: the probe's plain data (in this process) and its text tree."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gradrepl.inkernel import graph as graph_module
from gradrepl.inkernel.graph import graph_of
from gradrepl.protocol import Graph
from gradrepl.render.graph import graph_rows, graph_text


def graph(namespace: dict[str, Any], name: str) -> Graph:
    return graph_of(torch, list(namespace.items()), name)


def test_the_seeds_view_graph_names_the_leaf_and_its_intermediate() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    y = 2 * x
    z = y.view(2, 2)
    assert graph_text(graph({"x": x, "y": y, "z": z}, "z")) == (
        "z (2x2 float32): 3 nodes\n"
        "#0 ViewBackward0 → z\n"
        "└─ #1 MulBackward0 → y  [1 input without grad]\n"
        "   ├─ saved other: scalar int64\n"
        "   └─ #2 AccumulateGrad → x (leaf, 4 float32)"
    )


def test_a_node_reached_twice_is_drawn_once_then_referred_to() -> None:
    x = torch.ones(3, requires_grad=True)
    w = x * 2
    u = w + w.exp()
    data = graph({"x": x, "w": w, "u": u}, "u")
    assert [n.name for n in data.nodes] == ["AddBackward0", "MulBackward0", "AccumulateGrad", "ExpBackward0"]
    assert [n.next for n in data.nodes] == [(1, 3), (2,), (), (1,)]
    rows = graph_rows(data)
    assert [r.kind for r in rows if r.number == 1] == ["node", "ref"]
    assert sum(1 for r in rows if r.kind == "node") == 4  # linear in the nodes, not in the paths


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


def test_a_huge_chain_is_cut_with_a_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_module, "MAX_GRAPH_NODES", 50)
    x = torch.ones(1, requires_grad=True)
    c = x
    for _ in range(999):
        c = c * 1.0
    data = graph({"x": x, "c": c}, "c")
    assert data.total == 1000 and data.described == 50 and not data.walk_cut
    text = graph_text(data)
    assert text.endswith("… 950 more nodes not shown (the first 50 of 1,000 are)")
    assert "[depth " in text  # deep levels say their depth instead of drawing 50 guides


def test_a_walk_past_its_limit_says_at_least(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_module, "MAX_GRAPH_NODES", 10)
    monkeypatch.setattr(graph_module, "MAX_GRAPH_WALK", 100)
    x = torch.ones(1, requires_grad=True)
    c = x
    for _ in range(300):
        c = c + 1
    data = graph({"c": c}, "c")
    assert data.walk_cut and data.total == 100
    assert "… at least 90 more nodes not shown" in graph_text(data)


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
