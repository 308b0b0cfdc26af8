"""The backward log in training loops, traced in this process: calls numbered and grouped, the
first and the last described with those between counted, what reset the grads between two
calls, failed calls, retained grads and tensor hooks, and the root named as the line wrote it.

torch is the oracle: each test watches the same calls with torch's own hooks (a grad's
post-accumulate hook, tensor hooks registered before and after the user's, node pre-hooks)
and the tracer must report what they saw."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from gradrepl.inkernel import brief_calls, cell_calls
from gradrepl.inkernel import tracer as backward_trace
from gradrepl.render.backward_text import backward_transcript
from gradrepl.render.call_groups import call_groups
from gradrepl.render.text import backward_line


def small_model(ns: dict[str, Any]) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any, Any]:
    torch.manual_seed(0)
    ns["model"] = model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    return model, opt, torch.randn(16, 4), torch.randn(16, 1)


def written_norms(model: torch.nn.Module) -> list[float]:
    """torch's own record, one entry per backward call: the norm of all grads together once
    every parameter's grad was accumulated (post-accumulate-grad hooks)."""
    seen: list[float] = []
    params = list(model.parameters())
    pending: dict[int, float] = {}

    def accumulated(p: torch.Tensor) -> None:
        pending[id(p)] = float(p.grad.norm()) ** 2
        if len(pending) == len(params):
            seen.append(math.sqrt(sum(pending.values())))
            pending.clear()

    for p in params:
        p.register_post_accumulate_grad_hook(accumulated)
    return seen


def train(model: torch.nn.Module, opt: torch.optim.Optimizer, xb: Any, yb: Any, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(xb) - yb) ** 2).mean()
        loss.backward()
        opt.step()


def test_the_calls_of_a_loop_are_numbered_and_one_group_with_torchs_norms(traced) -> None:
    tracer, ns = traced
    model, opt, xb, yb = small_model(ns)
    seen = written_norms(model)
    train(model, opt, xb, yb, 5)
    (model(xb).sum() * 0).backward()  # another call: a group of its own
    events = tracer.rendered_events()
    assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.group for e in events] == [1, 1, 1, 1, 1, 2]
    assert [e.expression for e in events[:5]] == ["loss"] * 5
    assert [e.norm for e in events[:5]] == pytest.approx(seen[:5], rel=1e-5)
    groups = call_groups(events)
    assert [(g.first_step, g.last_step, g.count) for g in groups] == [(1, 5, 5), (6, 6, 1)]
    lines = [text for _, text in backward_transcript(events)]
    assert lines[0].startswith("steps 1–5: loss.backward() × 5 via MeanBackward0 → PowBackward0")
    assert lines[1] == ("  between each two calls the grads were cleared (set to None: opt.zero_grad() or "
                        "x.grad = None), so each call wrote them fresh")
    assert any(line.startswith("  grad norm ") and f"{seen[0]:.4g} → {seen[4]:.4g}" in line for line in lines)


def test_past_the_limit_the_first_and_last_calls_are_described_and_those_between_counted(traced) -> None:
    tracer, ns = traced
    model, opt, xb, yb = small_model(ns)
    seen = written_norms(model)
    steps = 300
    train(model, opt, xb, yb, steps)
    events = tracer.rendered_events()
    first, last = cell_calls.FIRST_KEPT, cell_calls.LAST_KEPT
    assert [e.step for e in events] == [*range(1, first + 1), *range(steps - last + 1, steps + 1)]
    assert {e.group for e in events} == {1}
    assert [e.brief for e in events] == [False] * first + [True] * last  # past step 50: in brief
    (run,) = events[first].skipped_before
    assert (run.first_step, run.count, run.root, run.resets) == (first + 1, steps - first - last, "loss", run.count)
    # Every norm taken is torch's; a brief call past step 128 has its norm taken now and then.
    for event in events:
        if event.norm is not None:
            assert event.norm == pytest.approx(seen[event.step - 1], rel=1e-5)
    taken = [e.step for e in events if e.brief and e.norm is not None]
    assert taken == [s for s in range(steps - last + 1, steps + 1) if brief_calls.norm_taken(s)]
    # The last call's grads are still what it wrote when the cell ends: their values are kept.
    final = {f"model.{name}": p.grad for name, p in model.named_parameters()}
    assert {leaf.name for leaf in events[-1].leaves} == set(final)
    for leaf in events[-1].leaves:
        assert leaf.after.stats.norm == pytest.approx(float(final[leaf.name].norm()))  # small grads: all kept
        assert not leaf.accumulated
    group = call_groups(events)[0]
    assert group.count == steps and group.counted == steps - first - last
    assert len(group.norms()) == steps
    text = [line for _, line in backward_transcript(events)]
    assert text[0].startswith(f"steps 1–{steps}: loss.backward() × {steps}")
    assert f"  described: steps 1–{first} and {steps - last + 1}–{steps}; the {steps - first - last} between counted" in \
        "\n".join(text)


def test_what_reset_a_grad_between_two_calls_is_told(traced, monkeypatch: pytest.MonkeyPatch) -> None:
    for described_in_full in (50, 0):  # calls described in full, then in brief
        monkeypatch.setattr(cell_calls, "DESCRIBED_IN_FULL", described_in_full)
        tracer, namespace = traced
        tracer.start_cell(1)
        namespace["w"] = w = torch.ones(3, requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1)
        (w * 1).sum().backward()
        (w * 2).sum().backward()  # nothing between: accumulated
        opt.zero_grad()
        (w * 3).sum().backward()
        w.grad.zero_()
        (w * 4).sum().backward()
        w.grad = torch.full((3,), 5.0)
        (w * 5).sum().backward()
        torch.nn.utils.clip_grad_norm_([w], 1.0)
        (w * 6).sum().backward()
        events = tracer.rendered_events()
        assert [[(r.name, r.kind) for r in e.resets] for e in events] == [
            [], [], [("w", "cleared")], [("w", "zeroed")], [("w", "replaced")], [("w", "changed")]]
        assert [e.leaves[0].accumulated for e in events] == [False, True, False, True, True, True]
        text = [line for _, line in backward_transcript(events)]
        assert "between step 2 and step 3: w.grad cleared (set to None: opt.zero_grad() or x.grad = None)" in text
        assert ("between step 3 and step 4: w.grad zeroed in place (x.grad.zero_() or "
                "opt.zero_grad(set_to_none=False))") in text
        assert "between step 4 and step 5: w.grad replaced (x.grad = another tensor)" in text
        assert "between step 5 and step 6: w.grad changed in place (clipped or scaled, say)" in text
        # A new cell starts from the grads as they are: what an earlier cell did is not told again.
        w.grad = None
        tracer.start_cell(2)
        (w * 2).sum().backward()
        assert tracer.rendered_events()[0].resets == ()


def test_a_group_says_how_often_its_grads_were_reset_between_calls(traced) -> None:
    tracer, ns = traced
    ns["w"] = w = torch.ones(3, requires_grad=True)
    for step in range(6):
        if step % 2 == 0:
            w.grad = None  # gradient accumulation over two calls
        (w * 2).sum().backward()
    text = [line for _, line in backward_transcript(tracer.rendered_events())]
    assert text[1] == "  the grads were cleared (set to None: opt.zero_grad() or x.grad = None) before 2 of the 5 calls after the first"


def test_a_failed_call_says_the_nodes_it_reached_and_its_error_once(traced) -> None:
    tracer, ns = traced
    ns["w"] = w = torch.ones(2, requires_grad=True)
    r = (w * 3).sum()
    r.backward()
    seen: list[str] = []
    r.grad_fn.register_prehook(lambda grads: seen.append("SumBackward0"))
    r.grad_fn.next_functions[0][0].register_prehook(lambda grads: seen.append("MulBackward0"))
    with pytest.raises(RuntimeError, match="a second time") as raised:
        r.backward()
    _, failed = tracer.rendered_events()
    assert list(failed.nodes) == seen == ["SumBackward0", "MulBackward0"]  # reached, per torch's hooks
    cell_error = f"RuntimeError: {raised.value}"
    assert backward_line(failed) == (f"r.backward() reached SumBackward0 → MulBackward0, then failed: "
                                     f"{cell_error.splitlines()[0]}")
    assert backward_line(failed, cell_error=cell_error) == (
        "r.backward() reached SumBackward0 → MulBackward0, then failed with the RuntimeError above")
    assert "via" not in backward_line(failed)


def test_a_failed_call_through_a_graph_too_big_to_hook_claims_no_nodes(traced, monkeypatch: pytest.MonkeyPatch) -> None:
    tracer, ns = traced
    monkeypatch.setattr(backward_trace, "MAX_EXACT", 1)
    ns["w"] = w = torch.ones(2, requires_grad=True)
    r = (w * 3).sum()
    r.backward()
    with pytest.raises(RuntimeError):
        r.backward()
    ok, failed = tracer.rendered_events()
    assert ok.node_order == "predicted" and ok.nodes  # it ran: the predicted order is given
    assert failed.nodes == () and failed.nodes_total == 3
    assert backward_line(failed).startswith("r.backward() failed: RuntimeError: Trying to backward")


def test_retained_grads_and_what_a_hook_did_are_in_the_calls_entry(traced) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.tensor([3.0, -4.0], requires_grad=True)
    given: list[torch.Tensor] = []
    passed: list[torch.Tensor] = []
    x.register_hook(lambda g: given.append(g.clone()))  # torch's view, before the user's hook
    x.register_hook(lambda g: g.clamp(-1, 1))
    x.register_hook(lambda g: passed.append(g.clone()))  # and after it
    ns["h"] = h = x * 2
    h.retain_grad()
    (h ** 2).sum().backward()
    (event,) = tracer.rendered_events()
    (hook,) = event.hooks
    assert (hook.name, hook.changed) == ("x", True)
    assert hook.norm_in == pytest.approx(float(given[0].norm()))
    assert hook.norm_out == pytest.approx(float(passed[0].norm())) == pytest.approx(2 ** 0.5)
    leaves = {leaf.name: leaf for leaf in event.leaves}
    assert leaves["h"].retained and leaves["h"].after.preview == tuple(h.grad.tolist()) == (12.0, -16.0)
    assert not leaves["x"].retained and leaves["x"].after.preview == tuple(x.grad.tolist())
    line = backward_line(event)
    assert "h.grad (retained) fresh [12, -16]" in line
    assert f"hook on x changed its grad: norm {hook.norm_in:.4g} → 1.414" in line
    assert len(x._backward_hooks) == 3  # the observers are gone again


def test_a_hook_that_changes_nothing_is_said_to_leave_the_grad(traced) -> None:
    tracer, ns = traced
    ns["x"] = x = torch.ones(2, requires_grad=True)
    x.register_hook(lambda g: None)
    (x * 2).sum().backward()
    (hook,) = tracer.rendered_events()[0].hooks
    assert not hook.changed and "hook on x left its grad as it was" in backward_line(tracer.rendered_events()[0])


def _step(loss: torch.Tensor) -> None:
    loss.backward()  # a local name: the namespace does not know it


def test_the_root_is_named_as_the_calling_line_wrote_it(traced) -> None:
    tracer, _ = traced
    a, b = torch.ones(2, requires_grad=True), torch.full((2,), 2.0, requires_grad=True)
    _step((a * b).sum())
    (a * b).sum().backward()
    (a + b).backward(torch.ones(2))
    torch.autograd.backward((a * 3).sum())
    torch.autograd.grad((a ** 2).sum(), [a])
    (
        (a * b)
        .mean()
        .backward()
    )
    torch.autograd.functional.jacobian(lambda t: t * 2, a)  # torch's own calls: no line of the user's
    events = tracer.rendered_events()
    assert [e.expression for e in events[:6]] == ["loss", "(a * b).sum()", "(a + b)", "(a * 3).sum()", "(a ** 2).sum()",
                                                  "(a * b).mean()"]
    assert all(e.expression is None for e in events[6:])
    assert backward_line(events[1]).startswith("(a * b).sum().backward() via SumBackward0")
    assert backward_line(events[2]).startswith("(a + b).backward(gradient=[1, 1]) via AddBackward0")


def test_a_brief_group_keeps_the_values_its_first_and_last_calls_left(traced, monkeypatch: pytest.MonkeyPatch) -> None:
    tracer, ns = traced
    monkeypatch.setattr(cell_calls, "DESCRIBED_IN_FULL", 0)
    ns["w"] = w = torch.ones(2, requires_grad=True)
    for _ in range(3):
        (w * 2).sum().backward()  # accumulates: 2, 4, 6
    for _ in range(3):
        (w * 1).sum().backward()  # another group: 7, 8, 9
    events = tracer.rendered_events()
    assert [e.group for e in events] == [1, 1, 1, 2, 2, 2]
    afters = [None if e.leaves[0].after is None else e.leaves[0].after.preview for e in events]
    assert afters == [(2.0, 2.0), None, (6.0, 6.0), (7.0, 7.0), None, (9.0, 9.0)]


def test_without_code_positions_the_calling_line_is_read_whole(traced, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.10 has no positions for an instruction: the line gives the root when it holds one such call."""
    from gradrepl.inkernel import call_sites

    monkeypatch.setattr(call_sites, "_positions", lambda code, lasti: None)
    tracer, _ = traced
    a = torch.ones(2, requires_grad=True)
    (a * 2).sum().backward()
    (a * 2).sum().backward(); (a * 3).sum().backward()  # noqa: E702  two on a line: neither is named
    assert [e.expression for e in tracer.rendered_events()] == ["(a * 2).sum()", None, None]
