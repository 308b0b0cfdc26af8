"""`gradrepl graph` at scale, through a real kernel: a 1,000-step recurrence as text, JSON and DOT."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.command_line import gradrepl, records, script
from test_graph_dot import read_dot

pytestmark = pytest.mark.kernel

RECURRENCE = """
import torch
h = torch.ones(3, requires_grad=True)
x = h
for _ in range(1000):
    h = h * 1.01 + 0.5
y = (x * 2).sum()
"""


def test_the_text_folds_the_recurrence_and_a_leaf_names_its_users(tmp_path: Path) -> None:
    done = gradrepl("graph", str(script(tmp_path, RECURRENCE)), "h", "x")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["h (3 float32): 2,001 nodes, 1 run of alike iterations folded",
                         "#0 × 1,000 AddBackward0 → MulBackward0  (2,000 nodes)"]
    assert "#5 AccumulateGrad → x (leaf, 3 float32)" in lines
    assert lines[-2:] == ["x (3 float32) has no autograd graph: a leaf: backward accumulates into its .grad",
                          "used by the graph of h, y"]


def test_json_has_the_run_as_a_node_with_repeat_and_dot_draws_it(tmp_path: Path) -> None:
    path = script(tmp_path, RECURRENCE)
    (h, x) = records(gradrepl("graph", str(path), "h", "x", "--json").stdout)
    run = h["nodes"][0]
    assert run["repeat"] == {"count": 1000, "period": 2, "nodes": 2000, "first": [1, 2], "last": [3, 4]}
    assert h["total"] == 2001 and h["described"] == 6
    assert x["used_by"] == ["h", "y"] and x["nodes"] == []
    done = gradrepl("graph", str(path), "h", "y", "--dot")
    assert done.returncode == 0, done.stderr
    dots = read_dot(done.stdout)
    assert [dot.name for dot in dots] == ["h", "y"]
    assert "× 1,000 AddBackward0 → MulBackward0" in dots[0].nodes["n0"]["label"]


def test_dot_and_json_together_are_a_usage_error(tmp_path: Path) -> None:
    done = gradrepl("graph", str(script(tmp_path, "x = 1")), "--dot", "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[-1] == "gradrepl graph: error: argument --json: not allowed with argument --dot"
