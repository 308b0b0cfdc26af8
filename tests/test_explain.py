"""The error explainer: each known autograd mistake, raised for real in a kernel, gets an
explanation that names the tensor and the cell, and the fix."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gradrepl.render.explain import ErrorContext, explain

MISTAKES = '''\
# %%
import torch

# %%
y = (torch.ones(2, requires_grad=True) * 3).sum()
y.backward()
y.backward()

# %%
m = torch.ones(2, 2, requires_grad=True) * 2
m.backward()

# %%
a = torch.ones(3, requires_grad=True)
b = a.exp()
b.add_(1)
b.sum().backward()

# %%
with torch.no_grad():
    c = torch.ones(2) * 2
c.sum().backward()

# %%
w = torch.ones(2, requires_grad=True)
arr = w.numpy()

# %%
leaf = torch.zeros(2, requires_grad=True)
leaf += 1
'''


@pytest.fixture(scope="module")
def explained(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    script = tmp_path_factory.mktemp("mistakes") / "mistakes.py"
    script.write_text(MISTAKES, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "gradrepl", "replay", "--json", "--keep-going", str(script)],
        capture_output=True, text=True, timeout=180,
    )
    records = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 7, run.stderr
    return [r["explanation"] for r in records[1:]]


@pytest.mark.kernel
def test_backward_a_second_time(explained: list[dict]) -> None:
    assert explained[0]["title"] == "backward through y's graph a second time in In [2]"
    assert "retain_graph=True" in explained[0]["fix"]


@pytest.mark.kernel
def test_grad_for_a_non_scalar_root(explained: list[dict]) -> None:
    assert explained[1]["title"] == "m.backward() needs a gradient in In [3]: m is not a single number (shape 2x2)"
    assert "m.backward(torch.ones_like(m))" in explained[1]["fix"] and "m.sum().backward()" in explained[1]["fix"]


@pytest.mark.kernel
def test_saved_tensor_modified_in_place(explained: list[dict]) -> None:
    assert explained[2]["title"] == "a tensor autograd saved was changed in place in In [4]"
    assert "[3] that Exp produced" in explained[2]["why"] and "clone()" in explained[2]["fix"]


@pytest.mark.kernel
def test_root_that_does_not_require_grad(explained: list[dict]) -> None:
    assert explained[3]["title"].startswith("c.sum() does not require grad in In [5]")
    assert "requires_grad=True" in explained[3]["fix"] and "no_grad" in explained[3]["why"]


@pytest.mark.kernel
def test_numpy_on_a_tensor_that_requires_grad(explained: list[dict]) -> None:
    assert explained[4]["title"] == "w.numpy() on a tensor that requires grad in In [6]"
    assert "w.detach().numpy()" in explained[4]["fix"]


@pytest.mark.kernel
def test_in_place_change_of_a_leaf(explained: list[dict]) -> None:
    assert explained[5]["title"] == "in-place change of leaf, a leaf that requires grad in In [7]"
    assert "torch.no_grad()" in explained[5]["fix"] and "leaf.data" in explained[5]["fix"]


def test_other_errors_get_no_explanation() -> None:
    assert explain(ErrorContext("ZeroDivisionError", "division by zero", 3)) is None
    assert explain(ErrorContext("RuntimeError", "mat1 and mat2 shapes cannot be multiplied", 3)) is None


@pytest.mark.parametrize(("line", "root"), [
    ("torch.ones(2, 2, requires_grad=True).mul(2).backward()", "torch.ones(2, 2, requires_grad=True).mul(2)"),
    ("loss = (a * b).sum(); (a * b).backward()", "(a * b)"),
    ("y[0].backward(retain_graph=True)", "y[0]"),
    ("print(1)", "<2x2 float32 tensor from MulBackward0>"),
])
def test_an_unnamed_root_is_called_what_the_line_wrote(line: str, root: str) -> None:
    from gradrepl.protocol import BackwardEvent, RootLabel

    label = RootLabel(None, "<2x2 float32 tensor from MulBackward0>", "MulBackward0", (2, 2))
    event = BackwardEvent("backward", 3, (label,), error="RuntimeError: grad can be implicitly created only for scalar outputs")
    explained = explain(ErrorContext("RuntimeError", "grad can be implicitly created only for scalar outputs", 3, (event,), line))
    assert explained is not None
    assert explained.title == f"{root}.backward() needs a gradient in In [3]: {root} is not a single number (shape 2x2)"


def test_the_root_the_tracer_read_from_the_calling_line_names_it() -> None:
    """Where the call is not on the failing line (a helper called it), the tracer's own
    reading of the calling line names the root; with neither, the root's name."""
    from gradrepl.protocol import BackwardEvent, RootLabel

    label = RootLabel("m", "2x2 float32 tensor from MulBackward0", "MulBackward0", (2, 2))
    error = "RuntimeError: grad can be implicitly created only for scalar outputs"
    context = dict(ename="RuntimeError", evalue=error.split(": ", 1)[1], cell=3, source_line="train_step(model)")
    read = BackwardEvent("backward", 3, (label,), error=error, expression="(m * 2)")
    explained = explain(ErrorContext(backward=(read,), **context))
    assert explained is not None and explained.title.startswith("(m * 2).backward() needs a gradient in In [3]")
    unread = BackwardEvent("backward", 3, (label,), error=error)
    explained = explain(ErrorContext(backward=(unread,), **context))
    assert explained is not None and explained.title.startswith("m.backward() needs a gradient")
