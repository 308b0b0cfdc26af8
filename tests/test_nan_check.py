"""--nan-check: the op where a NaN or an Inf was born, not the ops that passed it on; checked
in this process with torch itself (forward: the TorchFunctionMode; backward: node gradients)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from gradrepl.inkernel.errors import CellOrigins
from gradrepl.inkernel.namespace import guarded
from gradrepl.inkernel.nan_watch import NanWatch
from gradrepl.protocol import CellReport, NonFinite
from gradrepl.render.nonfinite_text import birth_lines
from support.command_line import gradrepl, script


@pytest.fixture
def watch() -> NanWatch:
    """A watch whose "cells" are this file's functions (their frames give the lines)."""
    origins = CellOrigins()
    origins.cell_names.add(__file__)
    watch = NanWatch(origins)
    watch.enabled = True
    return watch


def _line_of(text: str) -> int:
    return next(number for number, line in enumerate(Path(__file__).read_text().splitlines(), 1) if text in line)


def run_cell(watch: NanWatch, body: Any, count: int = 7) -> list[NonFinite]:
    watch.start_cell(torch)
    try:
        body()
    finally:
        births = watch.end_cell(count)
    return births


def test_a_log_of_a_negative_is_born_at_the_log_not_at_the_ops_after_it(watch: NanWatch) -> None:
    def cell() -> None:
        x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
        a = x * 2
        b = torch.log(a)  # the birth
        c = b * 3
        c.sum().backward()

    (birth,) = run_cell(watch, cell)
    assert (birth.phase, birth.op, birth.cell, birth.line) == ("forward", "torch.log", 7, _line_of("# the birth"))
    assert birth.inputs[0].values.preview == (2.0, -4.0, 6.0)
    assert birth.output[0].values.stats.nan == 1 and birth.source == "b = torch.log(a)  # the birth"
    assert birth_lines([birth])[0] == (f"the first non-finite value: torch.log made 1 nan of 3 from finite inputs, "
                                       f"at In [7], line {birth.line}")


def test_an_inf_from_a_division_and_an_in_place_log_are_births_too(watch: NanWatch) -> None:
    def cell() -> None:
        y = torch.tensor([1.0, 0.0])
        _ = torch.tensor([2.0]) / y  # inf
        z = torch.tensor([-1.0, 1.0])
        z.log_()  # in place
        _ = z + 1  # passes it on: not a birth

    births = run_cell(watch, cell)
    assert [(b.op, b.line) for b in births] == [("Tensor.div", _line_of("# inf")),
                                               ("Tensor.log_", _line_of("# in place"))]
    assert births[0].output[0].values.stats.inf == 1


def test_finite_cells_the_probes_own_ops_and_grad_reads_are_not_births(watch: NanWatch) -> None:
    def cell() -> None:
        x = torch.ones(3, requires_grad=True)
        (x * 2).sum().backward()
        x.grad = torch.tensor([float("nan")] * 3)  # nan written in: born here
        _ = x.grad  # a read: not an op that made anything
        _ = x.grad * 2  # passed on
        with guarded(torch):
            torch.log(torch.tensor([-1.0]))  # the probe's work is not watched

    assert [(b.op, b.line, b.inputs) for b in run_cell(watch, cell)] == [("torch.tensor", _line_of("# nan written in"), ())]
    assert run_cell(watch, lambda: (torch.ones(2) * 3).sum()) == []


def test_nothing_is_checked_when_the_watch_is_off(watch: NanWatch) -> None:
    watch.enabled = False
    assert run_cell(watch, lambda: torch.log(torch.tensor([-1.0]))) == []


@pytest.mark.parametrize("node_grads", ["on", "off"])
def test_a_backward_birth_names_the_node_and_the_line_that_made_it(watch: NanWatch, traced, node_grads: str) -> None:
    """Found in the call's node gradients, or (--node-grads off, or past auto's first calls) by
    a check of each node's gradients that copies only the non-finite ones."""
    tracer, ns = traced
    tracer.node_grads = node_grads
    tracer.on_node_grads = watch.backward_births

    def cell() -> None:
        ns["w"] = w = torch.tensor([0.0, 1.0], requires_grad=True)
        r = torch.sqrt(w).sum()  # made here
        r.backward()

    (birth,) = run_cell(watch, cell, count=3)
    assert (birth.phase, birth.op, birth.cell, birth.line) == ("backward", "SqrtBackward0", 3, _line_of("# made here"))
    assert birth.inputs[0].values.preview == (1.0, 1.0)
    assert birth.output[0].values.preview == ("inf", 0.5)
    assert (tracer.rendered_events()[0].node_grads is None) == (node_grads == "off")


@pytest.mark.parametrize("node_grads", ["on", "off"])
def test_a_backward_node_passing_on_a_saved_nan_says_the_forward_pass_made_it(watch: NanWatch, traced, node_grads: str) -> None:
    """The node was given finite gradients, but a tensor it saved holds the nan (made by a
    forward op in an earlier cell): the report says so, with the user's name for the tensor."""
    tracer, ns = traced
    tracer.node_grads = node_grads
    tracer.on_node_grads = watch.backward_births

    def forward() -> None:
        ns["w"] = w = torch.tensor([1.0, -1.0], requires_grad=True)
        ns["logs"] = torch.log(w)
        ns["loss"] = (ns["logs"] ** 2).sum()

    (made,) = run_cell(watch, forward, count=1)
    assert made.op == "torch.log"
    (birth,) = run_cell(watch, lambda: ns["loss"].backward(), count=2)  # type: ignore[attr-defined]
    assert (birth.phase, birth.op) == ("backward", "PowBackward0")
    (saved,) = birth.saved_nonfinite
    assert (saved.name, saved.tensor, saved.value.values.preview) == ("self", "logs", (0.0, "nan"))
    lines = birth_lines([birth])
    assert lines[2] == "  not made here: its saved self (logs) holds 1 nan of 2, from the forward pass"
    assert lines[-1] == "  saved self (logs): 2 float32 [0, nan]"
    assert NonFinite.from_json(json.loads(json.dumps(birth.to_json()))) == birth


def test_a_backward_birth_in_a_loops_brief_calls_is_found(watch: NanWatch, traced) -> None:
    """Past a cell's first DESCRIBED_IN_FULL calls (described in brief, no node gradients) each
    node's gradients are still checked: step 70 of a loop makes the inf."""
    from gradrepl.inkernel.tracer import DESCRIBED_IN_FULL

    tracer, ns = traced
    tracer.on_node_grads = watch.backward_births
    steps = DESCRIBED_IN_FULL + 20

    def cell() -> None:
        ns["w"] = w = torch.tensor([2.0, 1.0], requires_grad=True)
        for step in range(steps):
            shifted = w - (1.0 if step == steps - 1 else 0.0)  # w[1] is 0 at the last step
            torch.sqrt(shifted).sum().backward()  # born in the last call

    (birth,) = run_cell(watch, cell, count=4)
    assert (birth.phase, birth.op, birth.cell, birth.line) == ("backward", "SqrtBackward0", 4, _line_of("# born in the last call"))
    assert birth.output[0].values.preview[1] == "inf"
    assert tracer.calls.count == steps


def test_births_round_trip_in_the_cell_report() -> None:
    birth = NonFinite("forward", "torch.log", 1, 5, (None,), (None,), "lesson.py", "b = torch.log(a)")
    report = CellReport(1, nonfinite=(birth,))
    assert CellReport.from_json(json.loads(json.dumps(report.to_json()))) == report


@pytest.mark.kernel
def test_replay_json_says_where_the_nan_was_born(tmp_path: Path) -> None:
    path = script(tmp_path, """
        import torch
        x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
        b = torch.log(x * 2)
        loss = (b * 3).sum()
    """, "loss.backward()", "x.grad")
    done = gradrepl("replay", "--json", "--nan-check", str(path))
    cells = [json.loads(line) for line in done.stdout.splitlines()]
    first = cells[0]["nonfinite"][0]
    assert (first["phase"], first["op"], first["line"], first["file"]) == ("forward", "torch.log", 4, str(path))
    assert cells[1]["nonfinite"] == [] and cells[2]["nonfinite"] == []  # the backward passed nan on; none was born
    plain = gradrepl("replay", "--json", str(path))
    assert all(json.loads(line)["nonfinite"] == [] for line in plain.stdout.splitlines())
    text = gradrepl("replay", "--nan-check", str(path)).stdout
    assert "[nan] the first non-finite value: torch.log made 1 nan of 3 from finite inputs, at cells.py, line 4 (In [1])" in text


def test_the_detail_says_since_which_cell_a_tensor_holds_nan_and_the_graph_marks_its_gradients() -> None:
    from dataclasses import replace

    from gradrepl.protocol import Graph, GraphNode, Stats, TensorInfo, Values
    from gradrepl.protocol.node_grads import GradPreview
    from gradrepl.render.graph import graph_rows
    from gradrepl.ui.screens.tensor_detail import detail_table
    from gradrepl.ui.state.finiteness import FiniteHistory
    from support.screens import rendered

    fine = Values((1.0, 2.0), False, Stats(2.2, 1.0, 2.0, 0, 0, False, 2))
    bad = Values((1.0, "nan"), False, Stats("nan", 1.0, 1.0, 1, 0, False, 2))
    x = TensorInfo("x", (2,), "float32", "cpu", True, True, None, data=fine)
    history = FiniteHistory()
    history.update(1, {"x": x})
    history.update(2, {"x": replace(x, data=bad)})
    history.update(3, {"x": replace(x, data=bad)})
    assert history.said("x", "data") == "not finite since In [2] (finite after In [1])"
    assert "not finite since In [2] (finite after In [1])" in rendered(detail_table(replace(x, data=bad), history))
    history.update(4, {"x": x})
    assert history.said("x", "data") is None

    given, passed = GradPreview((2,), "float32", fine), GradPreview((2,), "float32", bad)
    graph = Graph("y", (2,), "float32", True, False, (
        GraphNode("LogBackward0", "y", next=(1,), grad_outputs=(given,), grad_inputs=(passed,)),
        GraphNode("MulBackward0", next=(), grad_outputs=(given,), grad_inputs=(given,))), 2)
    warned = [(row.text, row.warn) for row in graph_rows(graph, grads=True) if row.kind == "grads"]
    assert warned == [("grad in [1, 2] → out [1, nan]", True), ("grad in [1, 2] → out [1, 2]", False)]
