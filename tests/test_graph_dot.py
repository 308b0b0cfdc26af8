"""`gradrepl graph --dot`: the Graphviz DOT of a graph, read back by a small DOT reader here and
checked against the Graph it was written from (the probe's side runs in this process)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from gradrepl.inkernel.graph import graph_of
from gradrepl.protocol import Graph
from gradrepl.render.graph_dot import FREED, WARN, graph_dot, run_members

STATEMENT = re.compile(r'^\s*(?:(?P<edge>\w+) -> (?P<to>\w+)|(?P<node>\w+))(?: \[(?P<attrs>.*)\])?;$')
ATTRIBUTE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
HEADER = re.compile(r'^digraph "((?:[^"\\]|\\.)*)" \{$')


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


@dataclass
class Dot:
    name: str
    graph: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


def read_dot(text: str) -> list[Dot]:
    """Every digraph in `text`; fails on a line that is not a statement of the form graph_dot writes."""
    graphs: list[Dot] = []
    current: Dot | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        header = HEADER.match(line)
        if header:
            assert current is None, "a digraph inside a digraph"
            current = Dot(unescape(header.group(1)))
            continue
        assert current is not None, f"a statement outside a digraph: {line!r}"
        if line == "}":
            graphs.append(current)
            current = None
            continue
        found = STATEMENT.match(line)
        assert found, f"not a DOT statement: {line!r}"
        attrs = {key: unescape(value) for key, value in ATTRIBUTE.findall(found.group("attrs") or "")}
        if found.group("edge"):
            current.edges.append((found.group("edge"), found.group("to"), attrs))
        elif found.group("node") in ("graph", "node", "edge"):
            if found.group("node") == "graph":
                current.graph = attrs
        else:
            assert found.group("node") not in current.nodes, f"node {found.group('node')} drawn twice"
            current.nodes[found.group("node")] = attrs
    assert current is None, "a digraph is not closed"
    return graphs


def expected_edges(graph: Graph) -> Counter[tuple[str, str]]:
    """The solid edges graph_dot should draw: each drawn node's inputs, a run's iterations drawn as the run."""
    owner = run_members(graph)
    edges: Counter[tuple[str, str]] = Counter()
    cuts = 0
    for number, node in enumerate(graph.nodes):
        if number in owner:
            continue
        for child in node.next:
            if child < 0:
                edges[(f"n{number}", f"cut{cuts}")] += 1
                cuts += 1
            else:
                edges[(f"n{number}", f"n{owner.get(child, child)}")] += 1
    return edges


def check(graph: Graph) -> Dot:
    (dot,) = read_dot(graph_dot(graph))
    assert dot.name == graph.root
    owner = run_members(graph)
    drawn = {f"n{i}" for i in range(len(graph.nodes)) if i not in owner}
    assert {name for name in dot.nodes if name.startswith("n")} == drawn
    for number, node in enumerate(graph.nodes):
        if number not in owner:
            label = dot.nodes[f"n{number}"]["label"]
            assert label.splitlines()[0].startswith(f"#{number} ")
            assert node.name in label
    solid = Counter((a, b) for a, b, attrs in dot.edges if attrs.get("style") != "dashed")
    assert solid == expected_edges(graph)
    return dot


def test_a_dag_with_a_modified_saved_tensor_reads_back_as_its_graph() -> None:
    x = torch.ones(3, requires_grad=True)
    a = x * 3
    b = (a.sin() * a).sum()
    a.add_(1)
    graph = graph_of(torch, [("x", x), ("a", a), ("b", b)], "b")
    dot = check(graph)
    assert "backward through this graph will fail" in dot.graph["label"]
    marked = {name for name, attrs in dot.nodes.items() if attrs.get("color") == WARN}
    assert marked == {f"n{i}" for i, n in enumerate(graph.nodes) if any(s.state == "modified" for s in n.saved)}
    assert len(marked) == 2
    assert any("saved other: 3 float32 (a) ⚠ modified in place (version 1, saved at 0)" in dot.nodes[m]["label"] for m in marked)
    # x * 3 (a, before a.add_ gave it a new grad_fn) feeds both the Sin and the Mul above it:
    # one node, an edge from each.
    (shared,) = [i for i in range(len(graph.nodes)) if sum(i in n.next for n in graph.nodes) == 2]
    assert graph.nodes[shared].name == "MulBackward0"
    assert sorted(a for a, to, _ in dot.edges if to == f"n{shared}") == ["n1", "n2"]
    leaf = next(attrs for attrs in dot.nodes.values() if "x (leaf, 3 float32)" in attrs["label"])
    assert leaf["style"] == "rounded,filled"


def test_a_freed_graph_is_drawn_grey() -> None:
    x = torch.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    dot = check(graph_of(torch, [("x", x), ("y", y)], "y"))
    freed = [attrs for attrs in dot.nodes.values() if attrs.get("color") == FREED]
    assert len(freed) == 1 and freed[0]["label"].splitlines()[1:] == ["saved other freed", "saved self freed"]


def test_a_recurrence_is_one_run_node_with_the_shared_weight_drawn_once() -> None:
    W = torch.randn(3, 3, requires_grad=True)
    s = torch.zeros(1, 3, requires_grad=True)
    r = s
    for _ in range(50):
        r = torch.tanh(r @ W)
    graph = graph_of(torch, [("r", r), ("W", W), ("s", s)], "r")
    dot = check(graph)
    (run,) = [name for name, attrs in dot.nodes.items() if "× 48 TanhBackward0 → MmBackward0" in attrs["label"]]
    weight = [name for name, attrs in dot.nodes.items() if "W (leaf, 3x3 float32)" in attrs["label"]]
    assert len(weight) == 1
    assert (run, weight[0], {"style": "dashed", "label": "each iteration"}) in dot.edges


def test_a_leaf_is_drawn_with_the_graphs_that_use_it_and_names_are_quoted() -> None:
    x = torch.ones(3, requires_grad=True)
    named: list[tuple[str, Any]] = [("x", x), ('d["w"]', x * 2), ("y", (x + 1).sum())]
    (dot,) = read_dot(graph_dot(graph_of(torch, named, "x")))
    assert dot.nodes["leaf"]["label"] == "x (3 float32)"
    users = {dot.nodes[a]["label"] for a, b, _ in dot.edges if b == "leaf"}
    assert users == {'d["w"]', "y"}
    check(graph_of(torch, named, 'd["w"]'))


@pytest.mark.parametrize("graph", [Graph.failed("nope", "no tensor named nope"), Graph("t", (2,), "float32")])
def test_a_graph_without_nodes_is_still_a_digraph(graph: Graph) -> None:
    (dot,) = read_dot(graph_dot(graph))
    assert dot.graph["label"].startswith(("nope: no tensor named nope", "t (2 float32) has no autograd graph"))


def test_several_graphs_are_several_digraphs() -> None:
    x = torch.ones(2, requires_grad=True)
    named = [("x", x), ("y", x * 2), ("z", x.exp())]
    text = "\n".join(graph_dot(graph_of(torch, named, name)) for name in ("y", "z"))
    assert [dot.name for dot in read_dot(text)] == ["y", "z"]
