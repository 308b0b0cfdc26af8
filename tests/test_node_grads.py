"""--node-grads: what each node of a backward call received and passed on, checked against what
torch's own node hooks see, and the chain rule's text built from it."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from gradrepl.inkernel import tracer as backward_trace
from gradrepl.protocol import BackwardEvent, GradPreview, NodeGrads
from gradrepl.render.chain_rule import contributions, family, leaf_split_line, local_rule, split_text, step_lines
from support.random_graphs import every_node
from support.random_graphs import random_graph as _random_graph


def _flat(value: GradPreview | None) -> list[float] | None:
    if value is None:
        return None
    preview = value.values.preview
    out: list[float] = []

    def walk(item: Any) -> None:
        if isinstance(item, tuple):
            for inner in item:
                walk(inner)
        else:
            out.append(float(item))

    walk(preview)
    return out


def _watch_every_node(roots: list[Any]) -> tuple[list[tuple[str, list[Any], list[Any]]], list[Any]]:
    """A user's post-hooks on every node: (name, grad_outputs, grad_inputs) as torch gives them, in the order run."""
    seen: list[tuple[str, list[Any], list[Any]]] = []
    handles = []
    for node in every_node(roots):
        def hook(grad_inputs: Any, grad_outputs: Any, name: str = type(node).__name__) -> None:
            seen.append((name, [None if g is None else g.detach().clone() for g in grad_outputs],
                         [None if g is None else g.detach().clone() for g in grad_inputs]))

        handles.append(node.register_hook(hook))
    return seen, handles


def _only_event(tracer: Any) -> BackwardEvent:
    (event,) = tracer.rendered_events()
    return event


def test_the_seed_pow_node_receives_a_quarter_and_passes_on_half_of_x(traced) -> None:
    tracer, ns = traced
    ns["varibale"] = x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    ns["v_out"] = v_out = torch.mean(x ** 2)
    v_out.backward(retain_graph=True)
    event = _only_event(tracer)
    assert event.node_grads is not None
    assert [n.node for n in event.node_grads] == ["MeanBackward0", "PowBackward0", "AccumulateGrad"]
    mean, power, accumulate = event.node_grads
    assert power.grad_outputs[0].values.preview == ((0.25, 0.25), (0.25, 0.25))
    assert power.grad_inputs[0].values.preview == ((0.5, 1.0), (1.5, 2.0))
    assert power.grad_inputs[0].shape == (2, 2) and power.grad_inputs[0].dtype == "float32"
    assert power.saved[0].name == "self" and power.saved[0].tensor == "varibale"
    assert dict(power.values)["exponent"] == "2"
    assert mean.tensor == "v_out" and accumulate.leaf == "varibale"
    assert mean.next == (1,) and power.next == (2,) and accumulate.next == ()
    data = json.loads(json.dumps(event.to_json()))
    assert [set(n) >= {"node", "grad_outputs", "grad_inputs"} for n in data["node_grads"]] == [True] * 3
    assert data["node_grads"][1]["grad_inputs"][0]["stats"]["norm"] == pytest.approx(float(x.grad.norm()))
    assert BackwardEvent.from_json(data) == event
    assert local_rule(power) == ["grad_self = grad · exponent · self^(exponent − 1) = 0.25 · 2 · "
                                 "[[1, 2], [3, 4]]^(2 − 1) = [[0.5, 1], [1.5, 2]]"]


@pytest.mark.parametrize("seed", range(24))
def test_each_node_got_and_passed_what_torchs_own_hooks_see(traced, seed: int) -> None:
    tracer, ns = traced
    rnd = random.Random(seed)
    torch.manual_seed(seed)
    leaves, roots = _random_graph(rnd)
    ns.update({f"leaf{i}": t for i, t in enumerate(leaves)})
    root = sum(r.sum() for r in roots)
    seen, handles = _watch_every_node([root])
    root.backward(retain_graph=True)
    for handle in handles:
        handle.remove()
    recorded = _only_event(tracer).node_grads
    assert recorded is not None
    assert [n.node for n in recorded] == [name for name, _, _ in seen]
    for node, (_, grad_outputs, grad_inputs) in zip(recorded, seen, strict=True):
        for mine, theirs in ((node.grad_outputs, grad_outputs), (node.grad_inputs, grad_inputs)):
            assert len(mine) == len(theirs)
            for value, tensor in zip(mine, theirs, strict=True):
                assert (value is None) == (tensor is None)
                if tensor is not None:
                    assert value.shape == tuple(tensor.shape)
                    assert _flat(value) == pytest.approx(tensor.reshape(-1).tolist(), rel=1e-6, abs=1e-6)
    # The hooks changed nothing: the same graph run untraced writes the same grads.
    traced_grads = [leaf.grad.clone() if leaf.grad is not None else None for leaf in leaves]
    for leaf in leaves:
        leaf.grad = None
    tracer.enabled = False
    root.backward()
    assert all((a is None and leaf.grad is None) or torch.equal(a, leaf.grad)
               for a, leaf in zip(traced_grads, leaves, strict=True))


@pytest.mark.parametrize("seed", range(24))
def test_what_the_paths_bring_a_leaf_adds_up_to_its_grad(traced, seed: int) -> None:
    tracer, ns = traced
    rnd = random.Random(100 + seed)
    torch.manual_seed(seed)
    leaves, roots = _random_graph(rnd)
    ns.update({f"leaf{i}": t for i, t in enumerate(leaves)})
    sum(r.sum() for r in roots).backward()
    nodes = _only_event(tracer).node_grads
    assert nodes is not None
    by_name = {f"leaf{i}": t for i, t in enumerate(leaves)}
    checked = 0
    for index, node in enumerate(nodes):
        parts = contributions(nodes, index)
        if node.node != "AccumulateGrad":
            continue
        total = torch.zeros(node.grad_outputs[0].shape)
        for part in parts:
            total += torch.tensor(_flat(part.value)).reshape(part.value.shape)
        assert torch.allclose(total, by_name[node.leaf].grad, rtol=1e-5, atol=1e-4)
        checked += 1
    assert checked == sum(1 for leaf in leaves if leaf.grad is not None)


def test_a_leaf_reached_by_two_paths_says_what_each_brought(traced) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.tensor(1.0, requires_grad=True)
    ns["y"], ns["z"] = y, z = x * 2, x * 3
    (y + z).backward()
    nodes = _only_event(tracer).node_grads
    accumulate = next(i for i, n in enumerate(nodes) if n.node == "AccumulateGrad")
    assert split_text(nodes, accumulate) in ("2 via y + 3 via z", "3 via z + 2 via y")
    assert leaf_split_line(nodes, accumulate).startswith("x.grad gets ")
    lines = step_lines(nodes, accumulate)
    assert lines[0].endswith("AccumulateGrad → x.grad") and "x.grad += grad = 5" in "\n".join(lines)


def test_one_element_gradients_equal_in_value_keep_their_own_sign_and_shape(traced) -> None:
    """One-element gradients share a preview when equal (a chain passes each on): -0.0 is not 0.0."""
    tracer, ns = traced
    ns["x"] = x = torch.tensor([1.0], requires_grad=True)
    ns["y"], ns["z"] = y, z = x * 0.0, (x * -0.0).reshape(())
    (y.sum() + z).backward()
    nodes = _only_event(tracer).node_grads
    passed = {n.node: n.grad_inputs[0] for n in nodes if n.node in ("MulBackward0", "ViewBackward0")}
    signs = sorted(math.copysign(1.0, _flat(n.grad_inputs[0])[0]) for n in nodes if n.node == "MulBackward0")
    assert signs == [-1.0, 1.0]
    assert passed["ViewBackward0"].shape == (1,) and passed["ViewBackward0"].values.preview == (1.0,)


def test_a_mul_node_states_its_rule_with_its_numbers(traced) -> None:
    tracer, ns = traced
    ns["a"], ns["b"] = a, b = torch.tensor(3.0, requires_grad=True), torch.tensor(2.0, requires_grad=True)
    ((a * b) * 0.25).backward()
    nodes = _only_event(tracer).node_grads
    mul = next(n for n in nodes if n.node == "MulBackward0" and n.saved and n.saved[0].tensor in ("a", "b"))
    assert local_rule(mul) == ["grad_self = grad · other = 0.25 · 2 = 0.5", "grad_other = grad · self = 0.25 · 3 = 0.75"]


RULE_CASES: dict[str, Any] = {
    "Add": lambda x, w: (x + w).sum(), "Sub": lambda x, w: (x - w).sum(), "Mul": lambda x, w: (x * w).sum(),
    "Div": lambda x, w: (x / w).sum(), "Pow": lambda x, w: (x ** 3).sum(), "Neg": lambda x, w: (-x).sum(),
    "Sum": lambda x, w: x.sum(), "Mean": lambda x, w: x.mean(), "Mm": lambda x, w: (x @ w).sum(),
    "View": lambda x, w: x.view(4).sum(), "Expand": lambda x, w: x[:1].expand(3, 2).sum(),
    "Relu": lambda x, w: torch.relu(x).sum(), "Tanh": lambda x, w: torch.tanh(x).sum(),
    "Sigmoid": lambda x, w: torch.sigmoid(x).sum(), "Exp": lambda x, w: torch.exp(x).sum(),
    "Log": lambda x, w: torch.log(x).sum(), "Softmax": lambda x, w: (torch.softmax(x, 1) * w).sum(),
    "LogSoftmax": lambda x, w: (torch.log_softmax(x, 1) * w).sum(),
    "NllLoss": lambda x, w: F.cross_entropy(x, torch.tensor([0, 1])),
    "Addmm": lambda x, w: F.linear(x, w, torch.ones(2)).sum(), "AccumulateGrad": lambda x, w: x.sum(),
}


@pytest.mark.parametrize("kind", sorted(RULE_CASES))
def test_every_common_node_has_a_rule_ending_in_what_it_passed_on(traced, kind: str) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.tensor([[0.5, 1.5], [2.0, 3.0]], requires_grad=True)
    ns["w"] = w = torch.tensor([[1.0, -2.0], [0.5, 4.0]], requires_grad=True)
    RULE_CASES[kind](x, w).backward()
    nodes = _only_event(tracer).node_grads
    node = next(n for n in nodes if family(n.node) == kind)
    lines = local_rule(node)
    passed = [g for g in node.grad_inputs if g is not None] if kind != "AccumulateGrad" else node.grad_outputs
    assert lines and len(lines) == len(passed)
    from gradrepl.render.chain_rule import value_text

    for line, value in zip(lines, passed, strict=True):
        assert line.endswith(value_text(value).split(" (", 1)[0])


def test_big_gradients_are_previewed_with_their_stats(traced) -> None:
    tracer, ns = traced
    ns["w"] = w = torch.randn(100, 100, requires_grad=True)
    (w * 3).sum().backward()
    nodes = _only_event(tracer).node_grads
    mul = nodes[1]
    grad = mul.grad_inputs[0]
    assert grad.shape == (100, 100) and grad.values.truncated
    assert grad.values.stats.norm == pytest.approx(float(w.grad.norm()), rel=1e-6)
    assert grad.values.stats.min == grad.values.stats.max == 3.0


def test_off_auto_over_the_limit_and_brief_calls_say_why_nothing_was_recorded(traced, monkeypatch) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.ones(2, requires_grad=True)
    tracer.node_grads = "off"
    (x * 2).sum().backward()
    monkeypatch.setattr(backward_trace, "MAX_EXACT", 2)
    tracer.node_grads = "auto"
    (x * 2).sum().backward()
    tracer.node_grads = "on"
    (x * 2).sum().backward()
    off, over, on = tracer.rendered_events()
    assert off.node_grads is None and off.node_grads_note == "not recorded: --node-grads off"
    assert over.node_grads is None and "over the 2 of --node-grads auto" in over.node_grads_note
    assert on.node_grads is not None and len(on.node_grads) == 3 and on.node_grads_note is None


def test_brief_calls_of_a_long_loop_say_why(traced, monkeypatch) -> None:
    from gradrepl.inkernel import cell_calls

    tracer, ns = traced
    monkeypatch.setattr(cell_calls, "DESCRIBED_IN_FULL", 1)
    ns["x"] = x = torch.ones(2, requires_grad=True)
    for _ in range(3):
        (x * 2).sum().backward()
    events = tracer.rendered_events()
    assert events[0].node_grads is not None
    assert events[-1].node_grads is None and "described in brief" in events[-1].node_grads_note


def test_a_failed_call_keeps_the_nodes_that_finished(traced) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.ones(2, requires_grad=True)
    r = (x.exp() * 2).sum()
    r.grad_fn.next_functions[0][0].next_functions[0][0].register_prehook(lambda g: 1 / 0)  # ExpBackward0 fails
    with pytest.raises(ZeroDivisionError):
        r.backward()
    event = _only_event(tracer)
    assert [n.node for n in event.node_grads] == ["SumBackward0", "MulBackward0"]
    assert event.node_grads[1].next == (-1, -1)  # Exp never finished; the constant needs no gradient
    assert "finished before the error" in event.node_grads_note


def test_node_records_round_trip_through_json() -> None:
    from gradrepl.protocol import SavedValue, Stats, Values

    value = GradPreview((2,), "float32", Values((1.0, 2.0), False, Stats(2.236, 1.0, 2.0, 0, 0, False, 2)))
    node = NodeGrads("MulBackward0", (value,), (value, None), (1, -1), "y", None,
                     (SavedValue("other", "w", value), SavedValue("self", None, None, "freed")), (("alpha", "1"),))
    assert NodeGrads.from_json(json.loads(json.dumps(node.to_json()))) == node


def test_auto_records_a_loops_first_calls_and_on_records_every_call_described_in_full(traced) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.ones(2, requires_grad=True)
    for _ in range(backward_trace.AUTO_NODE_CALLS + 2):
        (x * 2).sum().backward()
    recorded = [event.node_grads is not None for event in tracer.rendered_events()]
    assert recorded == [True] * backward_trace.AUTO_NODE_CALLS + [False, False]
    assert "first 5 calls" in (tracer.rendered_events()[-1].node_grads_note or "")
    tracer.start_cell(2)
    tracer.node_grads = "on"
    for _ in range(backward_trace.AUTO_NODE_CALLS + 2):
        (x * 2).sum().backward()
    assert all(event.node_grads is not None for event in tracer.rendered_events())
