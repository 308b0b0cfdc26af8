"""The vector-Jacobian view: J computed from the graph without side effects, and vᵀ·J
checked against what backward wrote."""

from __future__ import annotations

import pytest
import torch

from gradrepl.inkernel import jacobian
from gradrepl.render.text import vjp_lines


def test_the_seeds_z_backward_v_shows_x_grad_as_v_transposed_times_j(traced) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    ns["y"] = y = 2 * x
    ns["z"] = z = y.view(2, 2)
    ns["v"] = v = torch.tensor([[2.0, 0.2], [0.01, 0.001]])
    z.backward(v, retain_graph=True)
    view = tracer.rendered_events()[0].jacobian
    assert view.root == "z"
    (leaf,) = view.leaves
    assert leaf.leaf == "x" and leaf.root_shape == (2, 2) and leaf.leaf_shape == (4,)
    assert leaf.matrix == ((2, 0, 0, 0), (0, 2, 0, 0), (0, 0, 2, 0), (0, 0, 0, 2))
    assert leaf.vjp == pytest.approx((4, 0.4, 0.02, 0.002))
    assert leaf.grad_change == pytest.approx(tuple(x.grad.tolist())) and leaf.matches is True
    assert vjp_lines(tracer.rendered_events()[0]) == [
        "x.grad += vᵀ·J = [4, 0.4, 0.02, 0.002] ✓  "
        "(v = [2, 0.2, 0.01, 0.001], J 4x4 = [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 2]])"
    ]
    z.backward(v)  # accumulated: the grad gains vᵀ·J again
    second = tracer.rendered_events()[1].jacobian.leaves[0]
    assert second.grad_change == pytest.approx((4, 0.4, 0.02, 0.002)) and second.matches is True


def test_j_matches_torch_functional_for_a_nonlinear_graph_with_two_leaves(traced) -> None:
    tracer, ns = traced
    ns["a"] = a = torch.randn(3, requires_grad=True)
    ns["b"] = b = torch.randn(2, 3, requires_grad=True)
    out = (b @ a.sin()).exp() * a[:2]
    out.backward(torch.tensor([0.5, -1.0]))
    leaves = {leaf.leaf: leaf for leaf in tracer.rendered_events()[0].jacobian.leaves}
    ja, jb = torch.autograd.functional.jacobian(lambda a_, b_: (b_ @ a_.sin()).exp() * a_[:2], (a.detach(), b.detach()))
    assert torch.allclose(torch.tensor(leaves["a"].matrix).float(), ja.reshape(2, -1), atol=1e-5)
    assert torch.allclose(torch.tensor(leaves["b"].matrix).float(), jb.reshape(2, -1), atol=1e-5)
    assert leaves["a"].matches and leaves["b"].matches


def test_computing_j_runs_no_hook_and_touches_no_grad(traced) -> None:
    tracer, ns = traced
    calls: list[str] = []
    ns["x"] = x = torch.ones(3, requires_grad=True)
    x.register_hook(lambda g: calls.append("leaf hook"))
    ns["h"] = h = x * 2
    h.retain_grad()
    h.register_hook(lambda g: calls.append("hook"))
    (h * h).backward(torch.ones(3))
    assert calls == ["hook", "leaf hook"]  # once each: the real call's
    assert h.grad.tolist() == [4.0, 4.0, 4.0] and x.grad.tolist() == [8.0, 8.0, 8.0]
    event = tracer.rendered_events()[0]
    assert event.jacobian.leaves[0].matches is True
    assert event.nodes == ("MulBackward0", "MulBackward0", "AccumulateGrad")  # J's direct calls are not runs


def test_a_custom_function_or_a_large_root_gets_a_note_not_a_j(traced, monkeypatch: pytest.MonkeyPatch) -> None:
    tracer, ns = traced

    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    ns["x"] = x = torch.ones(3, requires_grad=True)
    Double.apply(x).backward(torch.ones(3))
    first = tracer.rendered_events()[0]
    assert first.jacobian.note.startswith("the graph holds a custom autograd.Function (DoubleBackward)")
    assert first.nodes == ("DoubleBackward", "AccumulateGrad")  # a custom Function's node takes the hook too
    monkeypatch.setattr(jacobian, "MAX_ROOT", 2)
    (x * 3).backward(torch.ones(3))
    assert tracer.rendered_events()[1].jacobian.note == "the root has 3 elements (the view computes up to 2)"
    assert x.grad.tolist() == [5.0, 5.0, 5.0]


def test_autograd_grad_of_a_non_leaf_input_says_the_view_covers_leaves_only(traced) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.ones(3, requires_grad=True)
    h = x * 2
    torch.autograd.grad(h * h, h, torch.ones(3))
    assert tracer.rendered_events()[0].jacobian.note == "some inputs are not leaves: the view covers leaves only"


def test_a_scalar_root_or_a_leaf_root_has_no_vjp_view(traced) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.ones(3, requires_grad=True)
    (x * 3).sum().backward()
    x.backward(torch.ones(3))
    assert [e.jacobian for e in tracer.rendered_events()] == [None, None]
