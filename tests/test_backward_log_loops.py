"""The backward log with a training loop, kernel-free: the app on the recorded `training_loop`
session (a 300-step loop, then a cell whose second backward fails), and the log alone in a
small app for what resets grads between two calls."""

from __future__ import annotations

from textual.app import App, ComposeResult

from gradrepl.protocol import BackwardEvent, LeafChange, Values
from gradrepl.protocol.backward import GradReset
from gradrepl.ui.screens.backward_event import BackwardEventScreen, call_overview
from gradrepl.ui.widgets.backward_group import BackwardGroup, GroupHeader
from gradrepl.ui.widgets.backward_log import BackwardEntry, BackwardLog
from support.recorded_app import kernel_free, recorded_app, running
from support.recorder import BACKWARD_TWICE, TRAINING_LOOP, TRAINING_SETUP
from support.screens import rendered

SIZE = (120, 40)


async def test_a_training_loop_is_one_entry_that_unfolds_into_its_calls() -> None:
    app = recorded_app("training_loop")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await running(TRAINING_SETUP, TRAINING_LOOP)(pilot)
            log = app.query_one(BackwardLog)
            (group,) = log.query(BackwardGroup)
            assert log.entries == 1 and group.group.count == 300
            header = group.query_one(GroupHeader)
            assert str(header.render()).startswith("In [2] steps 1–300\nloss.backward() × 300")
            await pilot.press("f3")
            await pilot.pause()
            assert app.focused is header
            await pilot.press("enter")
            await pilot.pause()
            members = [w for w in group.query(BackwardEntry) if w is not header]
            assert [m.event.step for m in members] == [*range(1, 26), *range(276, 301)]
            assert "… 250 calls counted, not described (steps 26–275)" in [str(w.render()) for w in group.query(".run")]
            await pilot.press("down", "enter")  # step 1, in full
            await pilot.pause()
            assert isinstance(app.screen, BackwardEventScreen) and app.screen.event.step == 1
            assert app.screen.event.cell == 2 and not app.screen.event.brief
            await pilot.press("escape", "up", "enter")  # back on the group's own entry: folds it
            await pilot.pause()
            assert not group.expanded and list(group.query(BackwardEntry)) == [header]


async def test_the_last_calls_of_a_loop_open_as_described_in_brief() -> None:
    app = recorded_app("training_loop")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await running(TRAINING_SETUP, TRAINING_LOOP)(pilot)
            group = app.query_one(BackwardGroup)
            group.expanded = True
            await pilot.pause()
            last = list(group.query(BackwardEntry))[-1]
            assert last.event.step == 300 and last.event.brief
            last.focus()
            await pilot.press("enter")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, BackwardEventScreen)
            text = rendered(call_overview(screen.event))
            assert "in brief" in text and "nodes, in the order predicted (not recorded)" in text


async def test_a_failed_call_in_the_log_claims_no_run_and_shows_its_error_cut() -> None:
    app = recorded_app("training_loop")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await running(TRAINING_SETUP, TRAINING_LOOP, BACKWARD_TWICE)(pilot)
            entries = list(app.query_one(BackwardLog).query(".entry"))
            ok, failed = str(entries[-2].render()), str(entries[-1].render())
            assert ok.startswith("In [3] step 1 r.backward()\n  via SumBackward0 → MulBackward0 → AccumulateGrad")
            assert failed == ("In [3] step 2 r.backward()\n  reached SumBackward0 → MulBackward0\n"
                              "  failed: RuntimeError: Trying to backward through the graph a second time …")


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield BackwardLog(id="log")


def call(step: int, factor: float, resets: tuple[GradReset, ...] = ()) -> BackwardEvent:
    return BackwardEvent("backward", 4, nodes=("MulBackward0", "AccumulateGrad"), nodes_total=2,
                         leaves=(LeafChange("w", None, Values((factor,)), False, factor),), step=step, group=step,
                         expression=f"(w * {factor:g})", norm=factor, resets=resets)


async def test_what_reset_the_grads_is_said_between_the_calls_it_separates() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 30)) as pilot:
        log = app.query_one(BackwardLog)
        log.add_cell(4, (call(1, 1.0), call(2, 2.0, (GradReset("w", "cleared"),)), call(3, 3.0)), {}, {})
        await pilot.pause()
        shown = [(sorted(w.classes), str(w.render())) for w in log.children]
        assert [classes for classes, _ in shown] == [["entry"], ["between"], ["entry"], ["entry"]]
        assert shown[1][1] == "between step 1 and step 2: w.grad cleared (set to None: opt.zero_grad() or x.grad = None)"
        assert shown[0][1].startswith("In [4] step 1 (w * 1).backward()")
        assert log.entries == 3
