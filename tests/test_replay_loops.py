"""`gradrepl replay` on training loops and failed calls, with a real kernel: the text groups a
loop's calls, says what reset the grads between calls, names roots as the lines wrote them, and
prints a failed call's error once; `--json` carries each call's step and group."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.command_line import gradrepl, records, script

pytestmark = pytest.mark.kernel

SETUP = """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
xb, yb = torch.randn(64, 4), torch.randn(64, 1)
"""
LOOP = """
for step in range(120):
    opt.zero_grad()
    loss = ((model(xb) - yb) ** 2).mean()
    loss.backward()
    opt.step()
"""
TWICE = """
w = torch.ones(2, requires_grad=True)
r = (w * 3).sum()
r.backward()
r.backward()
"""
RESETS = """
x = torch.ones(2, requires_grad=True)
(x * 2).sum().backward()
x.grad.zero_()
(x * 3).sum().backward()
"""


def test_replay_groups_a_loop_and_says_what_reset_the_grads(tmp_path: Path) -> None:
    run = gradrepl("replay", "--keep-going", str(script(tmp_path, SETUP, LOOP, TWICE, RESETS)))
    lines = [line for line in run.stdout.splitlines() if line.startswith("[backward]")]
    loop = [line for line in lines if "loss" in line or line.startswith("[backward]   ")]
    assert loop[0].startswith("[backward] steps 1–120: loss.backward() × 120 via MeanBackward0 → PowBackward0")
    assert loop[1] == ("[backward]   between each two calls the grads were cleared (set to None: opt.zero_grad() or "
                       "x.grad = None), so each call wrote them fresh")
    assert any(line.startswith("[backward]   model.2.bias.grad: [") and "at step 120" in line for line in loop)
    assert any(line.startswith("[backward]   grad norm ") for line in loop)
    assert "[backward]   described: steps 1–25 and 96–120; the 70 between counted, their norms kept" in lines
    assert "[backward] step 1: (x * 2).sum().backward() via SumBackward0 → MulBackward0 → AccumulateGrad: " \
           "x.grad fresh [2, 2]" in lines
    assert ("[backward] between step 1 and step 2: x.grad zeroed in place (x.grad.zero_() or "
            "opt.zero_grad(set_to_none=False))") in lines
    assert "[backward] step 2: (x * 3).sum().backward() via SumBackward0 → MulBackward0 → AccumulateGrad: " \
           "x.grad accumulated [0, 0] → [3, 3]" in lines


def test_a_failed_call_does_not_claim_it_ran_and_its_error_is_printed_once(tmp_path: Path) -> None:
    run = gradrepl("replay", str(script(tmp_path, SETUP, TWICE)))
    assert run.stdout.count("Trying to backward through the graph a second time") == 1
    assert "[backward] step 2: r.backward() reached SumBackward0 → MulBackward0, then failed with the " \
           "RuntimeError above" in run.stdout.splitlines()


def test_json_gives_each_call_its_step_group_and_the_calls_counted(tmp_path: Path) -> None:
    run = gradrepl("replay", "--json", str(script(tmp_path, SETUP, LOOP)))
    events = records(run.stdout)[1]["backward"]
    assert [e["step"] for e in events] == [*range(1, 26), *range(96, 121)]
    assert {e["group"] for e in events} == {1} and {e["expression"] for e in events} == {"loss"}
    assert [e.get("brief", False) for e in events] == [False] * 25 + [True] * 25
    (run_between,) = events[25]["skipped_before"]
    assert {k: run_between[k] for k in ("group", "first_step", "count", "root", "resets")} == {
        "group": 1, "first_step": 26, "count": 70, "root": "loss", "resets": 70}
    assert "resets" not in events[0]  # nothing before the first call of the cell
    assert all(sorted(r["name"] for r in e["resets"]) == ["model.0.bias", "model.0.weight", "model.2.bias",
                                                          "model.2.weight"]
               and {r["kind"] for r in e["resets"]} == {"cleared"} for e in events[1:])
