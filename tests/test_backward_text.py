"""The text forms of a cell's backward calls, from records alone (no torch, no kernel): the
sparkline, groups of calls alike with the runs counted between them, and the lines replay prints."""

from __future__ import annotations

import pytest

from gradrepl.protocol import BackwardEvent, LeafChange, Values
from gradrepl.protocol.backward import CallRun, GradReset
from gradrepl.render.backward_text import backward_transcript, described_text, names_text
from gradrepl.render.call_groups import call_groups
from gradrepl.render.sparkline import sparkline
from gradrepl.render.text import backward_call, backward_line


@pytest.mark.parametrize(("values", "width", "line"), [
    ([1, 2, 3, 4, 5, 6, 7, 8], 40, "▁▂▃▄▅▆▇█"),
    ([3.0, 3.0, 3.0], 40, "▁▁▁"),  # all equal: the lowest bar
    ([1.0, None, "nan", 2.0], 40, "▁·!█"),  # not taken, not finite
    ([float("inf"), 1.0], 40, "!▁"),
    (list(range(100)), 4, "▁▃▆█"),  # each character the largest of its share
    ([0.0, 9.0, 0.0, 0.0], 2, "█▁"),  # a spike stays visible
    ([], 10, ""),
])
def test_a_sparkline_scales_from_the_lowest_to_the_highest_value(values, width, line) -> None:
    assert sparkline(values, width) == line


def loss_call(step: int, norm: float, resets: tuple[GradReset, ...] = (), group: int = 1, expression: str = "loss",
              skipped_before: tuple[CallRun, ...] = ()) -> BackwardEvent:
    leaf = LeafChange("w", None, Values((norm,)), False, norm)
    return BackwardEvent("backward", 2, nodes=("MeanBackward0", "AccumulateGrad"), nodes_total=2, leaves=(leaf,),
                         step=step, group=group, expression=expression, norm=norm, resets=resets,
                         skipped_before=skipped_before)


CLEARED = (GradReset("w", "cleared"),)


def test_calls_alike_and_the_runs_counted_between_them_are_one_group() -> None:
    run = CallRun(1, 3, 94, "loss", (0.5, 0.25), 47, 94, 0)
    events = [loss_call(1, 1.0), loss_call(2, 0.9, CLEARED), loss_call(97, 0.2, CLEARED, skipped_before=(run,)),
              loss_call(98, 0.1, CLEARED), loss_call(99, 7.0, group=2, expression="other")]
    first, second = call_groups(events)
    assert (first.first_step, first.last_step, first.count, first.counted) == (1, 98, 98, 94)
    assert first.norms() == [1.0, 0.9, *[0.5] * 47, *[0.25] * 47, 0.2, 0.1]
    assert first.resets_between() == (97, {"cleared"})
    assert (second.first_step, second.count, second.root) == (99, 1, "other")
    lines = [text for _, text in backward_transcript(events)]
    assert lines == [
        "steps 1–98: loss.backward() × 98 via MeanBackward0 → AccumulateGrad",
        "  between each two calls the grads were cleared (set to None: opt.zero_grad() or x.grad = None), so each "
        "call wrote them fresh",
        "  w.grad: [1] at step 1 → [0.1] at step 98",
        f"  grad norm {sparkline(first.norms())} 1 → 0.1 (of the grads each call wrote, together)",
        "  described: steps 1–2 and 97–98; the 94 between counted, their norms kept",
        "step 99: other.backward() via MeanBackward0 → AccumulateGrad: w.grad fresh [7]",
    ]


def test_a_group_of_counted_calls_alone_still_says_its_root_and_count() -> None:
    runs = (CallRun(1, 26, 10, "loss"), CallRun(2, 36, 5, "d_loss"))
    events = [loss_call(25, 1.0), loss_call(41, 1.0, group=3, skipped_before=runs)]
    lines = [text for _, text in backward_transcript(events)]
    assert "steps 36–40: 5 calls of d_loss, counted, not described" in lines


def test_calls_of_several_groups_past_the_runs_kept_are_one_mixed_run() -> None:
    mixed = CallRun(0, 30, 100)
    events = [loss_call(29, 1.0, group=4), loss_call(130, 1.0, group=4, skipped_before=(mixed,))]
    assert [g.count for g in call_groups(events)] == [1, 100, 1]
    assert call_groups(events)[1].root == "calls of several kinds"


def test_calls_recorded_before_they_were_numbered_are_each_their_own_entry() -> None:
    old = BackwardEvent("backward", 3, leaves=(LeafChange("x", None, Values(1.0), False),))
    assert [g.count for g in call_groups([old, old])] == [1, 1]
    assert [text for _, text in backward_transcript([old])] == ["?.backward(): x.grad fresh 1"]


def test_an_accumulated_grad_shows_its_value_before_and_after() -> None:
    leaf = LeafChange("v", Values((0.5, 1.0)), Values((1.0, 2.0)), True)
    event = BackwardEvent("backward", 1, leaves=(leaf,), expression="v_out", retain_graph=True)
    assert backward_line(event) == "v_out.backward(retain_graph=True): v.grad accumulated [0.5, 1] → [1, 2]"


def test_a_long_root_expression_is_cut() -> None:
    event = BackwardEvent("backward", 1, expression="(" + " + ".join(f"x{i}" for i in range(40)) + ")")
    assert backward_call(event).endswith("….backward()") and len(backward_call(event)) == 60 + len(".backward()")


def test_names_are_counted_past_the_first_three() -> None:
    assert names_text(["a"]) == "a.grad"
    assert names_text(["a", "b"]) == "a.grad and b.grad"
    assert names_text(["a", "b", "c", "d", "e"]) == "a.grad, b.grad, c.grad and 2 more"


def test_only_groups_with_counted_calls_say_which_are_described() -> None:
    (group,) = call_groups([loss_call(1, 1.0), loss_call(2, 1.0)])
    assert described_text(group) is None


def test_a_models_many_grads_are_summarised_past_the_first_few() -> None:
    def leaf(i: int, accumulated: bool = False, norm: float | str = 1.0) -> LeafChange:
        return LeafChange(f"model.{i}.weight", None, Values((1.0,)), accumulated, norm)

    few = tuple(leaf(i) for i in range(6))
    assert backward_line(BackwardEvent("backward", 1, leaves=few, expression="loss")).count(".grad fresh") == 6
    many = (*(leaf(i, norm=0.5 * (i + 1)) for i in range(299)), leaf(299, True, "nan"))
    line = backward_line(BackwardEvent("backward", 1, leaves=many, expression="loss"))
    assert line.count(".grad fresh") == 4 and "model.3.weight.grad" in line and "model.4.weight.grad" not in line
    assert line.endswith("and 296 more grads (295 fresh, 1 accumulated): model.4.weight … model.299.weight, "
                         "norms 2.5 to 149.5, 1 not finite")
