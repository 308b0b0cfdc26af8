"""The backward tracer, in this process: one event per call, from wherever it is made.

The order of an event's nodes is checked against torch itself: the tests register node
pre-hooks of their own on every node, as a user would, and the tracer must list what they saw.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

from gradrepl.inkernel import cell_calls, glances
from gradrepl.inkernel import tracer as backward_trace
from gradrepl.inkernel.values import corner_entries, describe_values, preview_of_corner
from gradrepl.protocol import Values
from gradrepl.render.text import backward_line
from support.random_graphs import every_node
from support.random_graphs import random_graph as _random_graph


def test_three_backwards_accumulate_as_in_the_seed(traced) -> None:
    tracer, ns = traced
    ns["varibale"] = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    ns["v_out"] = v_out = torch.mean(ns["varibale"] ** 2)
    for _ in range(3):
        v_out.backward(retain_graph=True)
    events = tracer.rendered_events()
    assert [e.leaves[0].after.preview for e in events] == [((0.5, 1.0), (1.5, 2.0)), ((1.0, 2.0), (3.0, 4.0)),
                                                           ((1.5, 3.0), (4.5, 6.0))]
    assert [e.leaves[0].accumulated for e in events] == [False, True, True]
    assert backward_line(events[2]) == (
        "v_out.backward(retain_graph=True) via MeanBackward0 → PowBackward0 → AccumulateGrad: "
        "varibale.grad accumulated [[1, 2], [3, 4]] → [[1.5, 3], [4.5, 6]]"
    )
    assert {e.node_order for e in events} == {"exact"}
    assert events[0].roots[0].shape == ()


def test_calls_inside_functions_and_an_optimizer_loop_are_each_an_event(traced) -> None:
    tracer, ns = traced
    ns["w"] = torch.ones(3, requires_grad=True)
    opt = torch.optim.SGD([ns["w"]], lr=0.1)

    def step() -> None:
        opt.zero_grad()
        (ns["w"] ** 2).sum().backward()
        opt.step()

    for _ in range(4):
        step()
    events = tracer.rendered_events()
    assert len(events) == 4
    assert all(e.leaves[0].name == "w" and not e.leaves[0].accumulated for e in events)
    assert events[0].roots[0].name is None
    assert events[0].roots[0].description == "scalar float32 tensor from SumBackward0"


def test_autograd_grad_records_what_it_returned_and_writes_no_grad(traced) -> None:
    tracer, ns = traced
    ns["x"] = torch.tensor([1.0, 2.0], requires_grad=True)
    torch.autograd.grad((ns["x"] ** 3).sum(), ns["x"], create_graph=True)
    (event,) = tracer.rendered_events()
    assert event.kind == "grad" and event.create_graph is True
    assert event.grads[0].preview == (3.0, 12.0)
    assert event.leaves == ()
    assert ns["x"].grad is None
    # The AccumulateGrad node of an input autograd.grad returns the gradient of is not run.
    assert event.nodes == ("SumBackward0", "PowBackward0") and event.node_order == "exact"


def test_a_failing_call_is_recorded_and_its_error_reaches_the_user(traced) -> None:
    tracer, ns = traced
    ns["y"] = torch.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        ns["y"].backward()
    (event,) = tracer.rendered_events()
    assert event.error.startswith("RuntimeError: grad can be implicitly created only for scalar outputs")
    assert event.roots[0].name == "y" and event.roots[0].shape == (2,)
    assert event.nodes == () and event.nodes_total == 0  # the engine never started


def test_the_vector_of_a_vector_jacobian_product_is_kept(traced) -> None:
    tracer, ns = traced
    ns["x"] = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    ns["z"] = (2 * ns["x"]).view(2, 2)
    ns["v"] = torch.tensor([[2.0, 0.2], [0.01, 0.001]])
    ns["z"].backward(ns["v"])
    (event,) = tracer.rendered_events()
    assert torch.tensor(event.gradient[0].preview).allclose(torch.tensor([[2.0, 0.2], [0.01, 0.001]]))
    assert event.nodes == ("ViewBackward0", "MulBackward0", "AccumulateGrad")
    assert event.roots[0].shape == (2, 2)
    assert event.leaves[0].after.preview == pytest.approx((4.0, 0.4, 0.02, 0.002))


def test_a_backward_from_a_leaf_runs_and_lists_its_accumulate_grad(traced) -> None:
    tracer, ns = traced
    ns["x"] = torch.ones(3, requires_grad=True)
    ns["x"].backward(torch.full((3,), 2.0))
    (event,) = tracer.rendered_events()
    assert event.nodes == ("AccumulateGrad",) and event.node_order == "exact"
    assert event.leaves[0].name == "x" and event.leaves[0].after.preview == (2.0, 2.0, 2.0)


def test_a_huge_graph_is_cut_with_a_count(traced) -> None:
    tracer, ns = traced
    ns["a"] = torch.ones(1, requires_grad=True)
    out = ns["a"]
    for _ in range(1000):
        out = out * 1.0
    out.sum().backward()
    (event,) = tracer.rendered_events()
    assert len(event.nodes) == backward_trace.MAX_NODES
    assert event.nodes_total == 1002 and event.node_order == "exact"


def test_calls_past_the_limit_are_counted_not_described(traced) -> None:
    tracer, ns = traced
    ns["a"] = torch.ones(1, requires_grad=True)
    total = cell_calls.FIRST_KEPT + cell_calls.LAST_KEPT + 7
    for _ in range(total):
        (ns["a"] * 2).sum().backward()
    events = tracer.rendered_events()
    assert len(events) == cell_calls.FIRST_KEPT + cell_calls.LAST_KEPT
    assert tracer.calls.counted == 7 and tracer.calls.count == total
    (run,) = events[cell_calls.FIRST_KEPT].skipped_before
    assert (run.first_step, run.count) == (cell_calls.FIRST_KEPT + 1, 7)
    assert ns["a"].grad.item() == 2 * total


def test_large_grads_are_glanced_at_not_summarised(traced) -> None:
    """Every call describes its tensors, so only a bounded preview is taken (no stats)."""
    tracer, ns = traced
    ns["w"] = torch.ones(300, 300, requires_grad=True)
    (ns["w"] * 3).sum().backward()
    after = tracer.rendered_events()[0].leaves[0].after
    assert after.truncated is True and after.stats is None
    assert after.preview[0] == (3.0, 3.0, 3.0, "…", 3.0, 3.0, 3.0)


def test_tracing_a_loop_does_not_show_a_users_warning_again(traced) -> None:
    """Python forgets which warnings it showed whenever warning filters change, so the tracer changes none."""
    tracer, ns = traced
    ns["w"] = w = torch.ones(2, requires_grad=True)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        for _ in range(3):
            warnings.warn("the user's own warning", stacklevel=1)  # the "default" action: shown once
            (w * 2).sum().backward()
    assert [str(warning.message) for warning in shown] == ["the user's own warning"]
    assert len(tracer.rendered_events()) == 3


# ---------------------------------------------------------------- node order, against torch's own hooks


def _hook_every_node(roots: list[Any], seen: list[str], change: Callable[[Any], Any] | None = None) -> list[Any]:
    """A user's node pre-hooks on every node behind `roots`: each notes its node's name when it runs.
    Returns the handles."""
    handles = []
    for node in every_node(roots):
        def hook(grad_outputs: Any, name: str = type(node).__name__) -> Any:
            seen.append(name)
            return None if change is None else change(grad_outputs)

        handles.append(node.register_prehook(hook))
    return handles


@pytest.mark.parametrize("seed", range(48))
def test_the_nodes_are_listed_in_the_order_torch_runs_them(traced, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    tracer, ns = traced
    rnd = random.Random(seed)
    torch.manual_seed(seed)
    if seed % 4 == 3:
        monkeypatch.setattr(backward_trace, "MAX_NODES", 7)
    leaves, roots = _random_graph(rnd)
    ns.update({f"leaf{i}": t for i, t in enumerate(leaves)})
    if seed % 2 == 0:
        roots = [sum(r.sum() for r in roots)]
    seen: list[str] = []
    _hook_every_node(roots, seen)
    torch.autograd.backward(roots, [torch.ones_like(r) for r in roots] if seed % 2 else None)
    (event,) = tracer.rendered_events()
    assert event.node_order == "exact" and event.notes == ()
    assert list(event.nodes) == seen[: backward_trace.MAX_NODES]
    assert event.nodes_total == len(seen)


def test_the_engines_rule_predicts_the_order_of_a_graph_too_big_to_hook(traced, monkeypatch: pytest.MonkeyPatch) -> None:
    """AccumulateGrad runs as soon as its gradient is in (it has the largest sequence number)."""
    tracer, ns = traced
    monkeypatch.setattr(backward_trace, "MAX_EXACT", 3)
    ns["x"], ns["w"] = x, w = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    r = (x * 2 + w.sin() * 3).sum()
    seen: list[str] = []
    _hook_every_node([r], seen)
    r.backward()
    (event,) = tracer.rendered_events()
    assert seen == ["SumBackward0", "AddBackward0", "MulBackward0", "SinBackward0", "AccumulateGrad", "MulBackward0",
                    "AccumulateGrad"]
    assert event.node_order == "predicted" and list(event.nodes) == seen and event.nodes_total == 7
    assert backward_line(event).endswith("(order predicted, not recorded): x.grad fresh [2, 2, 2]; w.grad fresh "
                                         "[1.621, 1.621, 1.621]")


def test_a_users_hook_that_changes_a_grad_is_still_honoured(traced) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    r = (y * 3).sum()
    seen: list[str] = []
    _hook_every_node([r], seen, change=lambda grads: tuple(None if g is None else g * 10 for g in grads))
    x.register_hook(lambda g: g + 1)  # a tensor hook as well
    r.backward()
    expected = (3 * torch.tensor([1.0, 2.0]).exp() * 10**3 + 1) * 10  # ×10 at Sum, Mul, Exp; +1; ×10 at AccumulateGrad
    assert torch.allclose(x.grad, expected)
    (event,) = tracer.rendered_events()
    assert list(event.nodes) == seen == ["SumBackward0", "MulBackward0", "ExpBackward0", "AccumulateGrad"]


@pytest.fixture
def recorders(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every recorder the tracer makes (RunRecorder, or GradRecorder for --node-grads), kept:
    one whose `ran` or `copies` grows after its call ended left a hook behind."""
    made: list[Any] = []
    runs, grads = backward_trace.RunRecorder, backward_trace.GradRecorder

    def kept_run(walked: Any) -> Any:
        made.append(runs(walked))
        return made[-1]

    class KeptGrads(grads):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(backward_trace, "RunRecorder", kept_run)
    monkeypatch.setattr(backward_trace, "GradRecorder", KeptGrads)
    return made


def test_retain_graph_twice_lists_the_nodes_each_time_and_leaves_no_hook(traced, recorders: list[Any]) -> None:
    tracer, ns = traced
    ns["a"], ns["b"] = a, b = torch.randn(2, 2, requires_grad=True), torch.randn(2, 2, requires_grad=True)
    r = (a @ b + a.sin()).sum()
    seen: list[str] = []
    _hook_every_node([r], seen)
    r.backward(retain_graph=True)
    first = list(seen)
    r.backward(retain_graph=True)
    assert seen == first + first
    assert [list(e.nodes) for e in tracer.rendered_events()] == [first, first]
    tracer.enabled = False
    r.backward()  # untraced: no hook of the tracer's is left to note it
    assert [len(recorder.ran) for recorder in recorders] == [len(first), len(first)]
    assert [len(recorder.copies) for recorder in recorders] == [len(first), len(first)]  # post-hooks gone too


def test_autograd_grad_with_inputs_lists_only_the_nodes_that_ran(traced) -> None:
    tracer, ns = traced
    ns["a"], ns["b"], ns["c"] = a, b, c = [torch.randn(3, requires_grad=True) for _ in range(3)]
    r = (a * b).sum() + c.sin().sum()
    seen: list[str] = []
    _hook_every_node([r], seen)
    torch.autograd.grad(r, [a], retain_graph=True)
    (event,) = tracer.rendered_events()
    assert "SinBackward0" not in seen and "AccumulateGrad" not in seen
    assert list(event.nodes) == seen and event.nodes_total == len(seen) == 3
    torch.autograd.backward(r, inputs=[c])
    second = tracer.rendered_events()[1]
    assert list(second.nodes) == seen[3:] and "SinBackward0" in second.nodes
    assert [leaf.name for leaf in second.leaves] == ["c"]


def test_create_graph_and_the_double_backward_are_each_listed_as_run(traced) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.tensor([0.5, 1.5], requires_grad=True)
    y = (x.sin() * x).sum()
    seen: list[str] = []
    _hook_every_node([y], seen)
    (g,) = torch.autograd.grad(y, x, create_graph=True)
    first = list(seen)
    second = g.sum()
    seen_again: list[str] = []
    _hook_every_node([second], seen_again)  # on the graph the first call built, and x's AccumulateGrad
    second.backward()
    grad_event, backward_event = tracer.rendered_events()
    assert grad_event.create_graph and list(grad_event.nodes) == first
    assert list(backward_event.nodes) == seen_again and len(seen_again) > len(first)
    assert torch.allclose(x.grad, 2 * x.detach().cos() - x.detach() * x.detach().sin())


def test_an_error_raised_mid_backward_keeps_the_nodes_that_ran_and_removes_the_hooks(traced, recorders: list[Any]) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.ones(2, requires_grad=True)
    r = (x.exp() * 2).sum()
    seen: list[str] = []

    def fail_at_exp(grads: Any) -> None:
        raise ValueError("user hook failed")

    _hook_every_node([r], seen)
    handle = r.grad_fn.next_functions[0][0].next_functions[0][0].register_prehook(fail_at_exp)  # on ExpBackward0
    with pytest.raises(ValueError, match="user hook failed"):
        r.backward(retain_graph=True)
    (event,) = tracer.rendered_events()
    assert event.error == "ValueError: user hook failed"
    # Reached, as torch's own pre-hooks saw: the node whose hook raised too.
    assert list(event.nodes) == seen == ["SumBackward0", "MulBackward0", "ExpBackward0"]
    handle.remove()
    seen.clear()
    r.backward()
    assert list(tracer.rendered_events()[1].nodes) == seen == ["SumBackward0", "MulBackward0", "ExpBackward0",
                                                               "AccumulateGrad"]
    assert [len(recorder.ran) for recorder in recorders] == [3, 4]  # the failed call's hooks saw nothing more
    assert [len(recorder.copies) for recorder in recorders] == [2, 4]


def test_a_walk_cut_short_between_two_roots_still_describes_the_call(traced, monkeypatch) -> None:
    tracer, ns = traced
    monkeypatch.setattr(backward_trace, "MAX_WALK", 3)
    ns["x"] = torch.ones(2, requires_grad=True)
    c = (ns["x"] * 1.0 * 1.0 * 1.0).sum()
    r = c * 2.0
    torch.autograd.backward([r, c])  # the walk stops inside the graph, before its leaf
    (event,) = tracer.rendered_events()
    assert event.notes == () and event.nodes_total == 3 and event.node_order == "predicted"
    assert event.nodes == ("MulBackward0", "SumBackward0", "MulBackward0")
    assert ns["x"].grad.tolist() == [3.0, 3.0]


# ---------------------------------------------------------------- glances


@pytest.mark.parametrize(
    "values",
    [
        torch.arange(300.0).reshape(20, 15),
        torch.arange(600.0).reshape(20, 30).t(),
        torch.arange(2 * 8 * 3 * 9.0).reshape(2, 8, 3, 9),
        torch.tensor([float("nan"), float("inf"), -float("inf")] * 30),
        torch.arange(500).reshape(5, 10, 10),
        torch.arange(100) % 3 == 0,
        torch.randn(10, 10, dtype=torch.complex64),
        torch.full((70,), 1e308, dtype=torch.float64),
        torch.arange(70.0).reshape(1, 70),
        torch.arange(70.0).reshape(70, 1, 1),
    ],
)
def test_a_large_glance_renders_as_its_corner_preview(values) -> None:
    rendered = glances.render_capture(torch, glances.capture_glance(torch, values))
    corner, gaps, kept_shape = corner_entries(torch, values)
    assert rendered.to_json() == {"preview": preview_of_corner(corner, gaps, kept_shape), "truncated": True, "stats": None}
    assert rendered == Values.from_json(rendered.to_json())


def test_a_large_grad_accumulating_shows_before_and_after(traced) -> None:
    tracer, ns = traced
    ns["w"] = torch.ones(10, 10, requires_grad=True)
    for _ in range(2):
        (ns["w"] * 2).sum().backward()
    (ns["w"] * 0).sum().backward()  # the grad is written, its values stay the same
    first, second, third = tracer.rendered_events()
    assert first.leaves[0].before is None and first.leaves[0].after.preview[0][0] == 2.0
    assert second.leaves[0].accumulated is True
    assert second.leaves[0].before.preview[0] == (2.0, 2.0, 2.0, "…", 2.0, 2.0, 2.0)
    assert second.leaves[0].after.preview[-1] == (4.0, 4.0, 4.0, "…", 4.0, 4.0, 4.0)
    assert third.leaves == ()


@pytest.mark.parametrize(
    "values",
    [
        torch.tensor(2.5),
        torch.tensor(float("nan")),
        torch.tensor(True),
        torch.tensor(3 + 4j),
        torch.tensor([1, -2, 3]),
        torch.tensor([float("inf"), 1.0]),
        torch.zeros(0),
        torch.arange(10.0),
        torch.arange(12).reshape(3, 4),
        torch.tensor([1.0, float("nan"), 2.0, float("-inf")] * 4),
        torch.arange(64) % 2 == 0,
        torch.arange(9.0).to(torch.complex64) * (1 + 2j),
        torch.arange(7, dtype=torch.int8),
    ],
)
def test_a_small_glance_renders_as_describe_values(values) -> None:
    rendered = glances.render_capture(torch, glances.capture_glance(torch, values))
    assert rendered == Values.from_json(describe_values(torch, values))
    assert rendered.to_json() == describe_values(torch, values)


@pytest.mark.parametrize("seed", range(12))
def test_the_grads_written_are_listed_in_the_order_the_engine_wrote_them(traced, seed: int) -> None:
    tracer, ns = traced
    rnd = random.Random(seed)
    torch.manual_seed(seed)
    leaves, roots = _random_graph(rnd)
    names = {id(t): f"leaf{i}" for i, t in enumerate(leaves)}
    ns.update({name: t for t, name in zip(leaves, names.values(), strict=True)})
    written: list[str] = []
    for leaf in leaves:  # torch's own word on when each .grad was written
        leaf.register_post_accumulate_grad_hook(lambda t: written.append(names[id(t)]))
    torch.autograd.backward([sum(r.sum() for r in roots)])
    (event,) = tracer.rendered_events()
    assert [leaf.name for leaf in event.leaves] == written
