"""Gradient health over steps: each parameter's grad norm and ‖grad‖/‖param‖ across the calls
that wrote it, checked against torch's own norms, and the alerts they raise."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gradrepl.inkernel.grad_health import MAX_POINTS, HealthBook
from gradrepl.inkernel.values import ValuesMemo
from gradrepl.protocol import GradHistory, HealthAlert, TensorInfo
from gradrepl.render.health import alert_lines, alerts, timeline
from gradrepl.render.inspector_cells import column_widths, tensor_cells
from gradrepl.render.inspector_rows import TensorRow
from gradrepl.ui.state.config import Settings
from support.command_line import gradrepl

ROOT = Path(__file__).resolve().parent.parent


def test_each_step_adds_the_grad_norm_and_the_parameter_norm_torch_computes(traced) -> None:
    tracer, ns = traced
    memo = ValuesMemo()
    book = HealthBook(memo.serial)
    tracer.on_grads = book.add
    torch.manual_seed(0)
    ns["model"] = model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    expected: list[tuple[float, float]] = []
    for _ in range(4):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).sum().backward()
        expected.append((float(model.weight.grad.norm()), float(model.weight.detach().norm())))
        opt.step()
    history = GradHistory.from_json(book.history(memo.serial(model.weight)))
    assert history.calls == (1, 2, 3, 4)
    assert [g for g in history.grad_norm] == pytest.approx([g for g, _ in expected], rel=1e-6)
    assert [p for p in history.param_norm] == pytest.approx([p for _, p in expected], rel=1e-6)
    assert history.ratio() == pytest.approx(expected[-1][0] / expected[-1][1], rel=1e-6)


def test_a_long_loop_keeps_a_bounded_series_ending_at_its_last_call(traced) -> None:
    tracer, ns = traced
    memo = ValuesMemo()
    book = HealthBook(memo.serial)
    tracer.on_grads = book.add
    ns["w"] = w = torch.ones(3, requires_grad=True)
    for _ in range(3 * MAX_POINTS):
        w.grad = None
        (w * 2).sum().backward()
    history = book.history(memo.serial(w))
    assert len(history["calls"]) <= MAX_POINTS + 1 and history["every"] > 1
    assert history["calls"][-1] <= book.calls and history["calls"][0] == 1


def _info(name: str, ratios: list[float | str], module: tuple[str, ...] = ()) -> TensorInfo:
    calls = tuple(range(1, len(ratios) + 1))
    grads = tuple(r if isinstance(r, str) else r * 2.0 for r in ratios)
    history = GradHistory(calls, grads, tuple(2.0 for _ in ratios))
    return TensorInfo(name, (2,), "float32", "cpu", True, True, None, module_path=module,
                      module_types=("Sequential", "Linear")[: len(module)], grad_history=history)


def test_vanishing_needs_most_of_a_modules_tensors_and_exploding_one() -> None:
    tensors = [
        _info("model.0.weight", [1e-3, 1e-8], ("model", "0")), _info("model.0.bias", [1e-3, 1e-9], ("model", "0")),
        _info("model.2.weight", [1e-8], ("model", "2")), _info("model.2.bias", [1e-2], ("model", "2")),
        _info("model.2.extra", [1e-2], ("model", "2")),
        _info("model.4.weight", [0.1, 50.0], ("model", "4")),
        _info("w", [0.1, "nan"]),
    ]
    found = alerts(tensors)
    assert [(a.kind, a.module, a.tensors, a.of) for a in found] == [
        ("vanishing", "model.0", ("model.0.weight", "model.0.bias"), 2),
        ("exploding", "model.4", ("model.4.weight",), 1),
        ("exploding", "w", ("w",), 1),
    ]
    assert found[0].ratio == pytest.approx(1e-9)
    assert alert_lines(found) == [
        "exploding gradients in model.4, w: ‖grad‖/‖param‖ nan (not finite) at backward call 2",
        "vanishing gradients in model.0: ‖grad‖/‖param‖ down to 1e-09 (below 1e-06) at backward call 2",
    ]
    assert alerts(tensors, vanishing=1e-10, exploding=100.0) == [found[2]]
    assert alerts(tensors, since={t.name: t.grad_history.calls[-1] for t in tensors}) == []


def test_the_detail_timeline_and_the_inspectors_column() -> None:
    info = _info("w", [1e-3, 1e-2, 1e-1])
    lines = timeline(info.grad_history, width=10)
    assert lines[0].startswith("‖grad‖         ▁") and lines[0].endswith("0.002 → 0.2")
    assert lines[1].startswith("‖grad‖/‖param‖ ▁") and lines[1].endswith("0.001 → 0.1")
    assert lines[2] == "(3 points, calls 1-3)"
    with_trend = [tensor_cells(TensorRow(info, info.name, 0))]
    without = [tensor_cells(TensorRow(replace(info, grad_history=None), info.name, 0))]
    assert with_trend[0]["trend"] == "▁▅█" and without[0]["trend"] == ""
    assert "trend" in column_widths(with_trend, 200) and "trend" not in column_widths(without, 200)


def test_thresholds_come_from_the_config_file(tmp_path: Path) -> None:
    from gradrepl.ui.state.health import HealthWatch

    path = tmp_path / "config.toml"
    path.write_text('vanishing_ratio = 1e-9\nexploding_ratio = "high"\n')
    watch = HealthWatch(Settings(path))
    assert (watch.vanishing, watch.exploding) == (1e-9, 10.0)  # a ratio that is not a number: the default
    assert HealthWatch(Settings(path), vanishing=1e-3).vanishing == 1e-3  # the command line wins
    assert watch.lines([_info("w", [1e-8])]) == []  # above 1e-9
    assert HealthAlert.from_json(json.loads(json.dumps(alerts([_info("v", [1e-8])])[0].to_json()))).module == "v"


@pytest.mark.kernel
def test_replay_names_the_first_layers_of_a_deep_sigmoid_network() -> None:
    done = gradrepl("replay", "--json", str(ROOT / "examples" / "vanishing_gradients.py"))
    cells = [json.loads(line) for line in done.stdout.splitlines()]
    (training,) = [c for c in cells if c["alerts"]]
    assert [(a["kind"], a["module"]) for a in training["alerts"]] == [("vanishing", "model.0"), ("vanishing", "model.2")]
    weight = next(t for t in training["tensors"] if t["name"] == "model.0.weight")
    assert len(weight["grad_history"]["calls"]) == 20
    printed = cells[-1]["stdout"].splitlines()[0]  # torch's own ‖grad‖/‖w‖ of the first layer
    ratio = weight["grad_history"]["grad_norm"][-1] / weight["grad_history"]["param_norm"][-1]
    assert printed == f"first layer ‖grad‖/‖w‖: {ratio:.1e}"
