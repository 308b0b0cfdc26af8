"""The backward tracer, in this process: one event per call, from wherever it is made."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from gradrepl.inkernel import tracer as backward_trace, probe  # noqa: E402
from gradrepl.render.text import backward_line  # noqa: E402


@pytest.fixture
def traced() -> Iterator[tuple[backward_trace.BackwardTracer, dict[str, Any]]]:
    """A tracer over a namespace the test fills; torch.autograd is restored afterwards."""
    namespace: dict[str, Any] = {}
    shell = SimpleNamespace(user_ns=namespace, user_ns_hidden={})
    tracer = backward_trace.BackwardTracer(
        lambda t: probe.named_tensors(t, shell), probe._guarded, probe.capture_glance, probe.render_capture
    )
    tracer.install(torch)
    tracer.start_cell(1)
    try:
        yield tracer, namespace
    finally:
        tracer.uninstall()
    assert not hasattr(torch.autograd.backward, "__gradrepl_original__")


def test_three_backwards_accumulate_as_in_the_seed(traced) -> None:
    tracer, ns = traced
    ns["varibale"] = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    ns["v_out"] = torch.mean(ns["varibale"] ** 2)
    for _ in range(3):
        ns["v_out"].backward(retain_graph=True)
    afters = [e["leaves"][0]["after"]["preview"] for e in tracer.rendered_events()]
    assert afters == [[[0.5, 1.0], [1.5, 2.0]], [[1.0, 2.0], [3.0, 4.0]], [[1.5, 3.0], [4.5, 6.0]]]
    assert [e["leaves"][0]["accumulated"] for e in tracer.rendered_events()] == [False, True, True]
    assert backward_line(tracer.rendered_events()[2]) == (
        "v_out.backward(retain_graph=True) via MeanBackward0 → PowBackward0 → AccumulateGrad: "
        "varibale.grad accumulated [[1.5, 3], [4.5, 6]]"
    )


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
    assert len(tracer.rendered_events()) == 4
    assert all(e["leaves"][0]["name"] == "w" and not e["leaves"][0]["accumulated"] for e in tracer.rendered_events())
    assert tracer.rendered_events()[0]["roots"][0]["name"] is None
    assert tracer.rendered_events()[0]["roots"][0]["description"] == "scalar float32 tensor from SumBackward0"


def test_autograd_grad_records_what_it_returned_and_writes_no_grad(traced) -> None:
    tracer, ns = traced
    ns["x"] = torch.tensor([1.0, 2.0], requires_grad=True)
    (g,) = torch.autograd.grad((ns["x"] ** 3).sum(), ns["x"], create_graph=True)
    (event,) = tracer.rendered_events()
    assert event["kind"] == "grad" and event["create_graph"] is True
    assert event["grads"][0]["preview"] == [3.0, 12.0]
    assert "leaves" not in event or event["leaves"] == []
    assert ns["x"].grad is None


def test_a_failing_call_is_recorded_and_its_error_reaches_the_user(traced) -> None:
    tracer, ns = traced
    ns["y"] = torch.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        ns["y"].backward()
    (event,) = tracer.rendered_events()
    assert event["error"].startswith("RuntimeError: grad can be implicitly created only for scalar outputs")
    assert event["roots"][0]["name"] == "y"


def test_the_vector_of_a_vector_jacobian_product_is_kept(traced) -> None:
    tracer, ns = traced
    ns["x"] = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    ns["z"] = (2 * ns["x"]).view(2, 2)
    ns["v"] = torch.tensor([[2.0, 0.2], [0.01, 0.001]])
    ns["z"].backward(ns["v"])
    (event,) = tracer.rendered_events()
    assert torch.tensor(event["gradient"][0]["preview"]).allclose(torch.tensor([[2.0, 0.2], [0.01, 0.001]]))
    assert event["nodes"] == ["ViewBackward0", "MulBackward0", "AccumulateGrad"]
    assert event["leaves"][0]["after"]["preview"] == pytest.approx([4.0, 0.4, 0.02, 0.002])


def test_a_huge_graph_is_cut_with_a_count(traced) -> None:
    tracer, ns = traced
    ns["a"] = torch.ones(1, requires_grad=True)
    out = ns["a"]
    for _ in range(1000):
        out = out * 1.0
    out.sum().backward()
    (event,) = tracer.rendered_events()
    assert len(event["nodes"]) == backward_trace.MAX_NODES
    assert event["nodes_total"] == 1002


def test_calls_past_the_limit_are_counted_not_described(traced) -> None:
    tracer, ns = traced
    ns["a"] = torch.ones(1, requires_grad=True)
    for _ in range(backward_trace.MAX_EVENTS + 7):
        (ns["a"] * 2).sum().backward()
    assert len(tracer.events) == backward_trace.MAX_EVENTS
    assert tracer.uncounted == 7
    assert ns["a"].grad.item() == 2 * (backward_trace.MAX_EVENTS + 7)


def test_large_grads_are_glanced_at_not_summarised(traced) -> None:
    """Every call describes its tensors, so only a bounded preview is taken (no stats)."""
    tracer, ns = traced
    ns["w"] = torch.ones(300, 300, requires_grad=True)
    (ns["w"] * 3).sum().backward()
    after = tracer.rendered_events()[0]["leaves"][0]["after"]
    assert after["truncated"] is True and after["stats"] is None
    assert after["preview"][0] == [3.0, 3.0, 3.0, "…", 3.0, 3.0, 3.0]


def _engine_order_by_definition(roots: list[Any]) -> list[str]:
    """The ordering _walk_graph promises, written plainly: of the nodes whose consumers have
    all run, the highest sequence number first (AccumulateGrad last), the earliest ready on a tie."""
    consumers: dict[int, int] = {}
    nodes, stack = {}, [t.grad_fn for t in roots]
    while stack:
        node = stack.pop()
        if node is None or id(node) in nodes:
            continue
        nodes[id(node)] = node
        for child, _ in node.next_functions:
            if child is not None:
                consumers[id(child)] = consumers.get(id(child), 0) + 1
                stack.append(child)

    def number(node: Any) -> int:
        return -1 if hasattr(node, "variable") else node._sequence_nr()

    ready = {id(t.grad_fn): t.grad_fn for t in roots if not consumers.get(id(t.grad_fn))}
    order = []
    while ready and len(order) < backward_trace.MAX_NODES:
        node = ready.pop(max(ready, key=lambda k: number(ready[k])))
        order.append(type(node).__name__)
        for child, _ in node.next_functions:
            if child is not None:
                consumers[id(child)] -= 1
                if consumers[id(child)] == 0:
                    ready[id(child)] = child
    return order


@pytest.mark.parametrize("seed", range(6))
def test_the_graph_is_listed_in_the_order_of_its_definition(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    rnd = random.Random(seed)
    monkeypatch.setattr(backward_trace, "MAX_NODES", 200 if seed % 2 else 9)
    leaves = [torch.randn(3, requires_grad=True) for _ in range(4)]
    pool = [*leaves, torch.randn(3)]
    for _ in range(30):
        a, b = rnd.choice(pool), rnd.choice(pool)
        pool.append(rnd.choice([a * b, a + b, torch.sin(a) - b, (a * a).sum() + b]))
    roots = [t for t in rnd.sample(pool[len(leaves) + 1:], 3) if t.grad_fn is not None]
    nodes, total, found = backward_trace._walk_graph(roots)
    assert nodes == _engine_order_by_definition(roots)
    assert {id(t) for t in found} == {id(t) for t in leaves if any(t is f for f in found)}


def test_a_walk_cut_short_between_two_roots_still_describes_the_call(traced, monkeypatch) -> None:
    tracer, ns = traced
    monkeypatch.setattr(backward_trace, "MAX_WALK", 3)
    ns["x"] = torch.ones(2, requires_grad=True)
    c = (ns["x"] * 1.0 * 1.0 * 1.0).sum()
    r = c * 2.0
    torch.autograd.backward([r, c])  # the walk stops inside c's graph, before reaching r's root
    (event,) = tracer.rendered_events()
    assert event["notes"] == [] and event["nodes_total"] == 3
    assert event["nodes"] == ["MulBackward0", "SumBackward0", "MulBackward0", "MulBackward0"]
    assert ns["x"].grad.tolist() == [3.0, 3.0]


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
    ],
)
def test_a_large_glance_renders_as_its_corner_preview(values) -> None:
    rendered = probe.render_capture(torch, probe.capture_glance(torch, values))
    corner, gaps, kept_shape = probe._corner(torch, values)
    assert rendered == {"preview": probe._corner_preview(corner, gaps, kept_shape), "truncated": True, "stats": None}


def test_a_large_grad_accumulating_shows_before_and_after(traced) -> None:
    tracer, ns = traced
    ns["w"] = torch.ones(10, 10, requires_grad=True)
    for _ in range(2):
        (ns["w"] * 2).sum().backward()
    (ns["w"] * 0).sum().backward()  # the grad is written, its values stay the same
    first, second, third = tracer.rendered_events()
    assert first["leaves"][0]["before"] is None and first["leaves"][0]["after"]["preview"][0][0] == 2.0
    assert second["leaves"][0]["accumulated"] is True
    assert second["leaves"][0]["before"]["preview"][0] == [2.0, 2.0, 2.0, "…", 2.0, 2.0, 2.0]
    assert second["leaves"][0]["after"]["preview"][-1] == [4.0, 4.0, 4.0, "…", 4.0, 4.0, 4.0]
    assert third["leaves"] == []


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
    ],
)
def test_a_small_glance_renders_as_describe_values(values) -> None:
    assert probe.render_capture(torch, probe.capture_glance(torch, values)) == probe.describe_values(torch, values)
