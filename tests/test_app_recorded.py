"""Pilot-driven flows with no kernel and no torch: the app plays back recordings of a real
kernel (tests/data/reports) through its whole front-end path. tests/test_app.py drives the
same flows against a live kernel (marked `kernel`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from textual.widgets import Static

from gradrepl.client.events import CellFinished, Result
from gradrepl.ui.app import GradReplApp
from gradrepl.ui.screens.autograd_graph import AutogradGraphScreen
from gradrepl.ui.screens.backward_event import BackwardEventScreen, vjp_view
from gradrepl.ui.screens.kernel_died import KernelDiedScreen
from gradrepl.ui.screens.tensor_detail import TensorDetailScreen
from gradrepl.ui.widgets.backward_log import BackwardEntry, BackwardLog
from gradrepl.ui.widgets.code_input import CodeInput
from gradrepl.ui.widgets.graph_view import GraphView
from gradrepl.ui.widgets.inspector import TensorInspector
from gradrepl.ui.widgets.output_block import OutputBlock
from gradrepl.ui.widgets.status_line import StatusLine
from support.recorded_app import ROOT, SEED, kernel_free, recorded_app, run_cell, session_of, settled, until_shown, workers_done
from support.recorded_session import RecordedSession, RecordingMismatch
from support.recording import load, names
from support.screens import rendered, tree_labels

SIZE = (120, 40)
SEED_BACKWARD = "v_out.backward(retain_graph=True)\nvaribale.grad"


def entries(app: GradReplApp) -> list[str]:
    return [str(w.render()) for w in app.query_one(BackwardLog).query(".entry")]



async def test_the_seed_resumes_from_its_recording_without_a_kernel() -> None:
    app = recorded_app("seed", script=SEED)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            assert [c.state for c in app.worksheet.cells] == ["ok"] * 12
            assert list(app.inspector.tensors) == ["tensor", "varibale", "v_out", "x", "y", "z", "v", "y1", "y2", "y3"]
            assert app.query_one(BackwardLog).entries == 3
            assert app.query_one(StatusLine).kernel_state == "idle"
            assert session_of(app).remaining == 0


async def test_each_backward_accumulates_and_the_inspector_marks_the_grad() -> None:
    app = recorded_app("seed_backward_again", script=SEED)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            inspector = app.query_one(TensorInspector)
            seen = []
            for _ in range(3):
                await run_cell(pilot, SEED_BACKWARD)
                seen.append(entries(app)[-1])
                assert inspector.changed == {"varibale": {"grad"}}
            assert app.query_one(BackwardLog).entries == 6
            assert all("accumulated" in entry for entry in seen)
            assert "→ [[1, 2], [3, 4]]" in seen[0] and "→ [[1.5, 3], [4.5, 6]]" in seen[1] and "→ [[2, 4], [6, 8]]" in seen[2]
            assert [e.text for e in app.worksheet.cells[-1].events if hasattr(e, "text")] == ["tensor([[2., 4.],\n        [6., 8.]])"]


async def test_enter_on_a_backward_entry_opens_it_with_the_vector_jacobian_view() -> None:
    app = recorded_app("seed", script=SEED)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await pilot.press("f3")
            await pilot.pause()
            shown = list(app.query(BackwardEntry))
            assert app.focused is shown[-1]
            await pilot.press("up")
            assert app.focused is shown[-2]
            await pilot.press("enter")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, BackwardEventScreen)
            assert screen.event.roots[0].name == "z"
            view_of_vjp = vjp_view(screen.event)
            assert view_of_vjp is not None
            view = rendered(view_of_vjp)
            assert "J of z with respect to x ✓ x.grad gained exactly vᵀ·J" in view
            assert [line.split()[1:] for line in view.splitlines() if line.strip().startswith("vᵀ·J")] == [["4", "0.4", "0.02", "0.002"]]
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, BackwardEventScreen)


async def test_the_tensor_detail_leads_to_its_graph() -> None:
    app = recorded_app("seed", script=SEED)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            inspector = app.query_one(TensorInspector)
            await pilot.press("f2")
            inspector.move_cursor(row=list(inspector.tensors).index("z"))
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, TensorDetailScreen) and app.screen.info.name == "z"
            await pilot.press("g")
            await until_shown(pilot, lambda: getattr(app.screen, "graph", None) is not None, "the graph came")
            screen = app.screen
            assert isinstance(screen, AutogradGraphScreen) and screen.tensor_name == "z"
            assert tree_labels(screen)[0] == "#0 ViewBackward0 → z"
            # the seed rebound x after z was made: z's leaf has no name any more
            assert tree_labels(screen)[-2:] == ["#2 AccumulateGrad → an unnamed leaf (leaf, 4 float32)",
                                                "grad in [4, 0.4, 0.02, 0.002]"]  # z.backward(v) gave x vᵀ·J


async def test_g_shows_the_graph_with_its_in_place_marks_and_references_lead_to_their_node() -> None:
    app = recorded_app("saved_tensor_in_place")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await run_cell(pilot, "import torch\nx = torch.ones(3, requires_grad=True)\na = x * 3\nb = (a.sin() * a).sum()\na.add_(1)")
            inspector = app.query_one(TensorInspector)
            await pilot.press("f2")
            inspector.move_cursor(row=list(inspector.tensors).index("b"))
            await pilot.press("g")
            await until_shown(pilot, lambda: getattr(app.screen, "graph", None) is not None, "the graph came")
            screen = app.screen
            assert isinstance(screen, AutogradGraphScreen)
            labels = tree_labels(screen)
            assert labels[:2] == ["#0 SumBackward0 → b", "#1 MulBackward0"]
            assert sum("⚠ modified in place" in label for label in labels) == 2
            assert "backward through this graph will fail" in str(screen.query_one("#graph-status").render())
            view = screen.query_one(GraphView)
            ref = next(index for index, row in enumerate(view.rows) if row.text.endswith("(drawn below)"))
            view.cursor = view.shown.index(ref)
            await pilot.press("enter")
            await pilot.pause()
            assert view.cursor_row == view.node_row(3)


async def test_a_dead_kernel_offers_a_restart_that_runs_the_good_cells_again() -> None:
    app = recorded_app("kernel_death")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            for source in ("kept = 1", "import torch\nw = torch.ones(2, requires_grad=True)", "1 / 0",
                           "(w * 3).sum().backward()", "import ctypes\nctypes.string_at(0)"):
                await run_cell(pilot, source)
            assert app.query_one(StatusLine).kernel_state == "dead"
            assert isinstance(app.screen, KernelDiedScreen)
            assert (app.screen.where, app.screen.reason, app.screen.good_cells) == ("the cell after In [4]", "the kernel was killed by SIGSEGV", 3)
            await pilot.press("r")  # a letter typed as it opens does not answer it
            assert isinstance(app.screen, KernelDiedScreen)
            await pilot.press("enter")  # the focused button: restart and run them again
            await workers_done(pilot, "kernel-control")
            await settled(pilot)
            reruns = [c for c in app.worksheet.cells if c.rerun]
            assert [c.source for c in reruns] == ["kept = 1", "import torch\nw = torch.ones(2, requires_grad=True)", "(w * 3).sum().backward()"]
            assert [c.state for c in reruns] == ["ok", "ok", "ok"]
            await run_cell(pilot, "w.grad")
            [result] = app.worksheet.cells[-1].events[:1]
            assert isinstance(result, Result) and result.text == "tensor([3., 3.])"
            session = session_of(app)
            assert session.restarts == 1 and session.remaining == 0


async def test_long_output_folds_and_output_past_the_limit_is_cut() -> None:
    app = recorded_app("long_output")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await run_cell(pilot, "for i in range(100):\n    print('line', i)")
            await run_cell(pilot, "for i in range(40):\n    print('more', i)\n'done'")
            await run_cell(pilot, "for i in range(300):\n    print(f'row {i:3d}')")
            folds = [block for block in app.query(OutputBlock) if block.foldable]
            assert [f.fold_title for f in folds] == ["▶ 76 more lines", "▶ 16 more lines", "▶ 226 more lines"]
            assert "more 39" in folds[1].view_text()  # the tail is shown
            kept = "".join(e.text for e in app.worksheet.cells[-1].events if hasattr(e, "text"))
            assert len(kept) == 2_000
            assert any("output cut: the cell printed 2,400 characters" in str(s.render()) for s in app.query(Static))


async def test_tab_completes_a_single_match_from_the_recorded_kernel() -> None:
    app = recorded_app("completion")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await run_cell(pilot, "varibale_unique = 3\nvaribale_other = 4")
            await pilot.press(*"varibale_u", "tab")
            await workers_done(pilot, "complete")
            assert app.query_one(CodeInput).text == "varibale_unique"


async def test_a_known_autograd_error_is_explained_under_it() -> None:
    app = recorded_app("backward_needs_gradient")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await run_cell(pilot, "import torch\nm = torch.ones(2, 2, requires_grad=True) * 2")
            await run_cell(pilot, "m.backward()")
            [box] = app.query(".explain")
            text = str(box.render())
            assert text.startswith("m.backward() needs a gradient in In [2]: m is not a single number (shape 2x2)")
            assert "Fix: pass gradient= shaped like m" in text


async def test_a_cell_the_recording_does_not_hold_stops_the_test() -> None:
    session = RecordedSession(load("completion"))
    await session.start()
    with pytest.raises(RecordingMismatch, match="the recording has 'varibale_unique"):
        await session.run("something else")


@pytest.mark.parametrize("name", names())
async def test_a_replayed_recording_yields_what_the_real_session_yielded(name: str) -> None:
    """The playback is only worth what it reproduces: per cell, the same kinds of events in
    the same order, ending the same way, as KernelSession gave while it was recorded."""
    recording = load(name)
    session = RecordedSession(recording)
    await session.start()
    for step in recording.steps:
        if step.kind == "restart":
            await session.restart()
            continue
        origin = {"file": "recorded.py", "line": step.origin_line} if step.origin_line else None
        events = (await session.run(step.source, origin=origin)).events
        assert [type(e).__name__ for e in events] == list(step.events)
        assert events[-1] == CellFinished(step.finished["status"], step.finished["execution_count"], step.finished["reason"])
    assert session.remaining == 0


def test_the_ui_renders_a_recording_in_a_fresh_process_without_torch_or_a_kernel_client() -> None:
    """In a process of its own (no other test has imported anything): the seed resumes from
    its recording, and neither torch nor jupyter_client, ipykernel or zmq is ever loaded."""
    code = (
        "import asyncio, json, sys\n"
        "from support.recorded_app import HEAVY, SEED, recorded_app, settled\n"
        "async def main():\n"
        "    app = recorded_app('seed', script=SEED)\n"
        "    async with app.run_test(size=(120, 40)) as pilot:\n"
        "        await settled(pilot)\n"
        "        return [c.state for c in app.worksheet.cells], app.runner.kernel_process\n"
        "states, process = asyncio.run(main())\n"
        "print(json.dumps({'states': states, 'process': repr(process),\n"
        "                  'heavy': sorted(m for m in sys.modules if m.split('.')[0] in HEAVY)}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found == {"states": ["ok"] * 12, "process": "None", "heavy": []}


@pytest.mark.parametrize("asked", [True, False])
async def test_start_up_objects_are_frozen_out_of_the_collector_once_the_kernel_is_idle(
    asked: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full collection over start-up's objects took 60 ms, which a key typed meanwhile
    waited (the first opening of a 100,000-line fold). `gradrepl` asks for gc.freeze() once
    its kernel is idle; an app that does not ask (tests) never freezes."""
    import gc

    frozen: list[int] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(1))
    app = recorded_app("seed", script=SEED)
    app.freeze_start_up = asked
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            assert app.runner.state == "idle"
    assert frozen == ([1] if asked else [])


async def test_the_stepper_walks_a_call_node_by_node_in_engine_order() -> None:
    from textual.widgets import Static

    from gradrepl.ui.screens.backward_event import BackwardEventScreen
    from gradrepl.ui.screens.backward_stepper import BackwardStepperScreen
    from gradrepl.ui.widgets.graph_view import GraphView

    app = recorded_app("seed", script=SEED)
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await pilot.press("f3", "up", "enter")
            await pilot.pause()
            assert isinstance(app.screen, BackwardEventScreen)
            await pilot.press("s")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, BackwardStepperScreen)
            names = [node.node for node in screen.nodes]
            assert names == ["ViewBackward0", "MulBackward0", "AccumulateGrad"]

            def shown() -> tuple[str, str]:
                view = screen.query_one(GraphView)
                step = screen.query_one("#step", Static).content
                return view.line_text(view.cursor_row or 0), str(step).splitlines()[0]

            assert shown() == ("#1 ViewBackward0 → z", "step 1 of 3: ViewBackward0 (made z)")
            await pilot.press("n")
            assert shown()[1] == "step 2 of 3: MulBackward0 (made y)"
            assert shown()[0].startswith("#2 MulBackward0")
            await pilot.press("end")
            assert shown() == ("#3 AccumulateGrad → x (leaf, 4 float32)", "step 3 of 3: AccumulateGrad → x.grad")
            await pilot.press("n")  # past the last node: stays
            assert shown()[1].startswith("step 3 of 3")
            await pilot.press("p", "home")
            assert shown()[1].startswith("step 1 of 3")
            view = screen.query_one(GraphView)
            await pilot.click(view, offset=(4, view.line_of(view.node_row(1))))  # a click on a node steps to it
            await pilot.pause()
            assert shown()[1].startswith("step 2 of 3")
            await pilot.press("escape")
            assert isinstance(app.screen, BackwardEventScreen)
