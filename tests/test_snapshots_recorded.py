"""Snapshot tests with no kernel and no torch: the app plays back what a real kernel sent
(tests/data/reports, made by scripts/record-reports) through its whole front-end path.
tests/test_snapshots.py keeps the same screens against a live kernel (marked `kernel`).

Update after a deliberate change with `scripts/test tests/test_snapshots_recorded.py
--snapshot-update` and look at the SVGs. Each docstring says what the picture shows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot

from gradrepl.ui.app import GradReplApp
from gradrepl.ui.widgets.inspector import TensorInspector
from support.recorded_app import (
    ROOT,
    SEED,
    kernel_free,
    recorded_app,
    run_cell,
    running,
    session_of,
    settled,
    until_shown,
    workers_done,
)

SnapCompare = Callable[..., bool]  # pytest-textual-snapshot's fixture

SIZE = (120, 40)
SEED_BACKWARD = "v_out.backward(retain_graph=True)\nvaribale.grad"


@pytest.fixture(autouse=True)
def repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    """The status line shows the script path relative to the working directory."""
    monkeypatch.chdir(ROOT)


def then(first: Callable[[Pilot], Awaitable[None]], *keys: str) -> Callable[[Pilot], Awaitable[None]]:
    """`first`, then these keys, then a moment for the screen they open to draw."""

    async def run(pilot: Pilot) -> None:
        await first(pilot)
        await pilot.press(*keys)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    return run


def snapshot(snap_compare: SnapCompare, app: GradReplApp, run_before: Callable[[Pilot], Awaitable[None]] = settled,
             size: tuple[int, int] = SIZE) -> None:
    with kernel_free(app):
        assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_empty_session(snap_compare: SnapCompare) -> None:
    """A fresh session on an empty recording, 120x40: the transcript's hint, an empty
    backward log, no tensors, the input with its placeholder, the status line 'kernel idle,
    0 cells run, no file', and the footer keys."""
    snapshot(snap_compare, recorded_app(None))


def test_seed_resumed(snap_compare: SnapCompare) -> None:
    """`gradrepl examples/seed_autograd.py` once its 12 recorded cells ran: the transcript
    at its last cells (x.data *= 100: tensor([100.], requires_grad=True) and tensor([2.])),
    the backward log's three entries (v_out.backward, z.backward(gradient=...) with
    x.grad += vᵀ·J = [4, 0.4, 0.02, 0.002], y.backward()), the inspector listing tensor,
    varibale, v_out, x, y, z, v, y1, y2, y3 with what the last cell changed in orange (x's
    data [100] and grad [2], y's shape and data), the notice 'Resumed
    examples/seed_autograd.py: 12 cells ran' and the status line 'kernel idle, 12 cells run'.
    Byte for byte the picture tests/test_snapshots.py takes with a live kernel."""
    app = recorded_app("seed", script=SEED)
    snapshot(snap_compare, app)
    assert session_of(app).remaining == 0


def test_seed_resumed_at_80x24(snap_compare: SnapCompare) -> None:
    """The same on 80x24: every pane still there and readable: the transcript at the last
    cell, the backward log at 'In [12] y.backward()', the inspector scrolled to what the last
    cell changed (x's data [100] and grad [2], y's row) with the columns name, shape, grad_fn,
    data and grad, all inside the pane (dtype, req_grad and leaf left out for want of room;
    a long preview cut with '…'), a vertical scroll bar and none sideways; the footer on one
    line."""
    snapshot(snap_compare, recorded_app("seed", script=SEED), size=(80, 24))


def test_seed_resumed_at_160x50(snap_compare: SnapCompare) -> None:
    """The resumed seed on a large terminal: more of the transcript, all ten tensors with
    full data and grad previews, the backward log's entries in full. (It ran on a real kernel
    in test_snapshots.py, where a loaded machine's timing moved the transcript's scroll bar.)"""
    snapshot(snap_compare, recorded_app("seed", script=SEED), size=(160, 50))


def test_backward_cell_run_three_times_more(snap_compare: SnapCompare) -> None:
    """The seed resumed, then its backward cell typed three more times: the transcript ends
    with Out[15] tensor([[2., 4.], [6., 8.]]); the backward log's last three entries are
    v_out.backward(retain_graph=True) with varibale.grad accumulated, going [[0.5, 1], [1.5,
    2]] → [[1, 2], [3, 4]] → [[1.5, 3], [4.5, 6]] → [[2, 4], [6, 8]]; the inspector's
    varibale row shows that grad, marked as changed."""
    run = running(SEED_BACKWARD, SEED_BACKWARD, SEED_BACKWARD)
    snapshot(snap_compare, recorded_app("seed_backward_again", script=SEED), run)


def test_an_explained_in_place_error_on_a_leaf(snap_compare: SnapCompare) -> None:
    """In [2] x.add_(1) on a leaf that requires grad: the short RuntimeError traceback ('a
    leaf Variable that requires grad is being used in an in-place operation.') and under
    it, with a yellow bar, the explanation 'in-place change of x, a leaf that requires grad
    in In [2]' with its Why and Fix (torch.no_grad() or x.data); the inspector lists x."""
    run = running("import torch\nx = torch.ones(2, 2, requires_grad=True)", "x.add_(1)")
    snapshot(snap_compare, recorded_app("leaf_in_place_error"), run)


def test_an_explained_backward_without_a_gradient(snap_compare: SnapCompare) -> None:
    """In [2] m.backward() on a 2x2 tensor: the transcript at the traceback's end (torch's
    autograd/__init__.py _make_grads raising 'grad can be implicitly created only for scalar
    outputs'), then with a yellow bar 'm.backward() needs a gradient in In [2]: m is not a
    single number (shape 2x2)', its Why (vᵀ·J needs v) and Fix (gradient= shaped like m, or
    m.sum().backward()); the backward log's entry 'In [2] m.backward()' failed, in red; the
    inspector lists m (2, 2) MulBackward0 [[2, 2], [2, 2]]."""
    run = running("import torch\nm = torch.ones(2, 2, requires_grad=True) * 2", "m.backward()")
    snapshot(snap_compare, recorded_app("backward_needs_gradient"), run)


def test_the_vector_jacobian_event_detail(snap_compare: SnapCompare) -> None:
    """The seed resumed, then F3, Up, Enter: the z.backward(gradient=[[2, 0.2], [0.01,
    0.001]], retain_graph=True) call in full (step 1, root z, the gradient v, the nodes
    ViewBackward0 → MulBackward0 → AccumulateGrad, x.grad fresh, norm 4.02, → [4, 0.4, 0.02, 0.002],
    'node gradients: recorded for 3 nodes: s steps through them'),
    then the vector-Jacobian view: why v is needed, 'J of z with respect to x ✓ x.grad
    gained exactly vᵀ·J' and the table with the v column (2, 0.2, 0.01, 0.001), rows
    ∂z[0, 0] … ∂z[1, 1] of J = 2·I over x[0] … x[3], the row vᵀ·J 4 0.4 0.02 0.002 in bold
    and the row 'x.grad gained' with the same numbers."""
    snapshot(snap_compare, recorded_app("seed", script=SEED), then(settled, "f3", "up", "enter"))


def test_the_tensor_detail_of_varibale(snap_compare: SnapCompare) -> None:
    """The seed resumed, then F2, Down, Enter: the box 'tensor varibale': shape (2, 2)
    float32 cpu strided, type Tensor, requires_grad yes, is_leaf yes, grad_fn None,
    retains_grad no, version 0, data [[1, 2], [3, 4]] (norm 5.477, min 1, max 4) and grad
    [[0.5, 1], [1.5, 2]] (norm 2.739, min 0.5, max 2); 'g: autograd graph · Escape closes'."""
    snapshot(snap_compare, recorded_app("seed", script=SEED), then(settled, "f2", "down", "enter"))


def test_a_graph_with_a_saved_tensor_modified_in_place(snap_compare: SnapCompare) -> None:
    """g on b, where b = (a.sin() * a).sum() and a was then changed in place: the screen
    'autograd graph of b', in red 'b (scalar float32): 5 nodes' and '2 saved tensors were
    modified in place ...: backward through this graph will fail', then one chain at the left
    edge: #0 SumBackward0 → b, #1 MulBackward0 with 'saved other: 3 float32 (a) ⚠ modified
    in place since it was saved (version 1, saved at 0)' in red, a dim 'saved self' and
    '#3 MulBackward0 (drawn below)', #2 SinBackward0 with its red saved self (a), #3
    MulBackward0 [1 input without grad], #4 AccumulateGrad → x (leaf, 3 float32); the box
    only as tall as these rows."""
    setup = running("import torch\nx = torch.ones(3, requires_grad=True)\na = x * 3\nb = (a.sin() * a).sum()\na.add_(1)")

    async def open_graph(pilot: Pilot) -> None:
        await setup(pilot)
        inspector = pilot.app.query_one(TensorInspector)
        await pilot.press("f2")
        inspector.move_cursor(row=list(inspector.tensors).index("b"))
        await pilot.press("g")
        await until_shown(pilot, lambda: getattr(pilot.app.screen, "graph", None) is not None, "the graph came")

    snapshot(snap_compare, recorded_app("saved_tensor_in_place"), open_graph)


def _recurrence_graph(name: str, *keys: str) -> Callable[[Pilot], Awaitable[None]]:
    """The recurrence recording's cell typed in, then g on `name` in the inspector, then these keys."""
    from support.recorder import RECURRENCE

    async def open_graph(pilot: Pilot) -> None:
        await running(RECURRENCE)(pilot)
        inspector = pilot.app.query_one(TensorInspector)
        await pilot.press("f2")
        inspector.move_cursor(row=list(inspector.tensors).index(name))
        await pilot.press("g")
        await until_shown(pilot, lambda: getattr(pilot.app.screen, "graph", None) is not None, "the graph came")
        await pilot.press(*keys)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    return open_graph


def test_a_1000_step_recurrence_graph_folded(snap_compare: SnapCompare) -> None:
    """120x40, g on h after 1,000 steps of h = h * 1.01 + 0.5: a small box 'autograd graph
    of h' (as tall as its 3 lines) over the app, 'h (3 float32): 2,001 nodes, 1 run of alike
    iterations folded', then two rows at the left edge: '▶ #0 × 1,000 AddBackward0 →
    MulBackward0  (2,000 nodes)' (folded, the cursor on it) and '#5 AccumulateGrad → x
    (leaf, 3 float32)'."""
    snapshot(snap_compare, recorded_app("recurrence"), _recurrence_graph("h"))


def test_a_1000_step_recurrence_graph_with_its_run_opened(snap_compare: SnapCompare) -> None:
    """The same after Enter and e: '▼ #0 × 1,000 …' open over one chain hanging from '└─ #1' (no
    other branch): its first iteration (#1
    AddBackward0 (alpha=1) → h, #2 MulBackward0 with 'saved other: scalar float64'), '… 998
    iterations alike between the first and the last (1,996 nodes)', its last iteration (#3,
    #4), then #5 AccumulateGrad → x at the left edge again: nothing deeper than two levels."""
    snapshot(snap_compare, recorded_app("recurrence"), _recurrence_graph("h", "enter", "e"))


def test_a_leafs_screen_lists_the_graphs_that_use_it_at_80x24(snap_compare: SnapCompare) -> None:
    """80x24, g on the leaf x: a box 'x is a leaf' of six lines: 'x (3 float32) is a leaf:
    it has no graph of its own; backward accumulates into its .grad.', 'The graphs of these
    named tensors reach it:', then h (highlighted) and y; 'Enter: open that graph · Esc:
    close' on its bottom border."""
    snapshot(snap_compare, recorded_app("recurrence"), _recurrence_graph("x"), size=(80, 24))


def test_the_kernel_died_dialog(snap_compare: SnapCompare) -> None:
    """Cell 5 segfaults the kernel: the dialog with a red border over the app, 'The kernel
    died in cell 5: the kernel was killed by SIGSEGV.', the note that every cell is kept, the
    buttons 'Restart and run 3 cells again' (kept = 1, the import and the backward; 1 / 0
    failed), 'Fresh kernel' and 'Later', and what R, F and Escape do. Behind it: In [3]'s
    ZeroDivisionError, the backward log's w.grad fresh → [3, 3], w in the inspector; the
    status line 'kernel dead the kernel was killed by SIGSEGV' and a red notice saying so."""
    run = running("kept = 1", "import torch\nw = torch.ones(2, requires_grad=True)", "1 / 0",
                  "(w * 3).sum().backward()", "import ctypes\nctypes.string_at(0)")
    snapshot(snap_compare, recorded_app("kernel_death"), run)


def test_a_long_output_is_folded_and_a_huge_one_cut(snap_compare: SnapCompare) -> None:
    """Three printing cells under a 2,000-character output limit, the transcript at its end:
    In [3]'s source, 'row   0' … 'row  11', the fold '▶ 226 more lines', its tail 'row 238'
    … 'row 249' (the last line kept) and, in italics, 'output cut: the cell printed 2,400
    characters; the first 2,000 characters are kept'. No tensors, nothing in the backward log."""
    run = running("for i in range(100):\n    print('line', i)", "for i in range(40):\n    print('more', i)\n'done'",
                  "for i in range(300):\n    print(f'row {i:3d}')")
    snapshot(snap_compare, recorded_app("long_output"), run)


def test_tab_lists_the_completions_to_choose_from(snap_compare: SnapCompare) -> None:
    """After varibale_unique = 3 and varibale_other = 4, 'varibale_' then Tab: a list under
    the input offering varibale_other and varibale_unique, the first highlighted."""

    async def complete(pilot: Pilot) -> None:
        await run_cell(pilot, "varibale_unique = 3\nvaribale_other = 4")
        await pilot.press(*"varibale_", "tab")
        await workers_done(pilot, "complete")

    snapshot(snap_compare, recorded_app("completion"), complete)


def test_the_help_screen(snap_compare: SnapCompare) -> None:
    """F1: the help screen over the app, with the keys of the code input (Enter, Ctrl+J,
    Ctrl+R, Up/Down, Tab), the keys that work anywhere, and what the panes mean."""
    snapshot(snap_compare, recorded_app(None), then(settled, "f1"))



def test_a_wide_output_has_a_scrollbar_row_and_cut_markers(snap_compare: SnapCompare) -> None:
    """At 80x24, In [1]'s Out[1] is print(torch.randn(3, 9)): torch's 80-column lines in a
    transcript 40 columns wide, not reflowed. Its three long rows are cut at the pane's edge,
    each ending in an accent '…'; the short rows ('0.3223],', '0.0316],', '-0.2897]])') are
    whole. Under the block, one scrollbar row with its thumb over the left half (scrolled to
    column 0). In [2]'s Out[2] 'tensor([3., 3.])' below has no bar and no marker."""
    from gradrepl.client.events import Result
    from gradrepl.ui.state.worksheet import SessionCell

    wide = ("tensor([[-1.1258, -1.1524, -0.2506, -0.4339,  0.8487,  0.6920, -0.3160, -2.1152,\n"
            "          0.3223],\n"
            "        [-1.2633,  0.3500,  0.2660,  0.1665,  0.8744, -0.1435, -0.1116, -0.6136,\n"
            "          0.0316],\n"
            "        [-0.4927,  0.0537,  0.6181, -0.4128, -0.8411, -2.3160, -0.1023,  0.7924,\n"
            "         -0.2897]])")

    async def show(pilot: Pilot) -> None:
        await settled(pilot)
        app = pilot.app
        assert isinstance(app, GradReplApp)
        for number, (source, text) in enumerate([("torch.randn(3, 9)", wide), ("w.grad", "tensor([3., 3.])")], 1):
            cell = SessionCell(number, source, state="ok", execution_count=number)
            app.transcript.add_cell(cell)
            await pilot.pause()
            app.transcript.add_event(cell, Result(number, {"text/plain": text}))
            app.transcript.finish(cell)
        await settled(pilot)

    snapshot(snap_compare, recorded_app(None), show, size=(80, 24))


# ---------------------------------------------------------------- the inspector with models (issue 13)


def _models(*keys: str) -> Callable[[Pilot], Awaitable[None]]:
    """The deep_model recording's cells typed in (a 16-layer nn.Sequential, an MLP, c = x,
    then a backward through the deep one), then these keys."""
    from support.model_cells import DEEP_BACKWARD, DEEP_MODEL

    return then(running(DEEP_MODEL, DEEP_BACKWARD), *keys) if keys else running(DEEP_MODEL, DEEP_BACKWARD)


def test_a_big_model_folded_beside_a_small_one_open(snap_compare: SnapCompare) -> None:
    """120x40, the inspector: '▸ deep  Sequential' folded on one row (32 params, float32,
    96 values, its grad cell 'norm 10.25' highlighted: the backward wrote 32 grads), '▾ mlp
    Sequential' open (4 params, 49 values, no grad: —) over its 0.weight (8, 4), 0.bias,
    2.weight (1, 8) and 2.bias rows, then 'x (= c)' (4, 2); every column shown; under the
    pane '37 tensors (38 names), 32 changed'."""
    snapshot(snap_compare, recorded_app("deep_model"), _models())


def test_a_big_model_opened_then_one_of_its_layers(snap_compare: SnapCompare) -> None:
    """The same after F2, Enter, Down, Enter: '▾ deep  Sequential' open, a row per layer
    ('▾ 0  Linear' open over its weight (2, 2) and bias (2,) with their grads, then '▸ 1
    Linear' … each folded with its own '2 params, 6 values' and grad norm), the cursor on
    layer 0's row; the pane scrolls (its bar at the right)."""
    snapshot(snap_compare, recorded_app("deep_model"), _models("f2", "enter", "down", "enter"))


def test_the_inspector_filtered_by_name(snap_compare: SnapCompare) -> None:
    """F2 then '/weight': the title 'Tensors  /weight▏', the 18 weights by their full names
    (deep.0.weight … deep.15.weight, mlp.0.weight, mlp.2.weight), none folded, and under the
    pane '18 of 37 tensors (38 names), 32 changed'; the input below is still empty."""
    snapshot(snap_compare, recorded_app("deep_model"), _models("f2", "slash", *"weight"))


def test_model_parameters_at_80x24(snap_compare: SnapCompare) -> None:
    """80x24 after model = nn.Linear(64, 32) and loss.backward(): the inspector shows the
    columns name, shape, grad_fn, data and grad inside the pane: '▾ model  Linear  2 params
    2,080 values  norm 0.5711', then weight (32, 64) and bias (32,) with previews and grads
    cut with '…', batch (8, 64) and loss () MeanBackward0 0.2963; '4 tensors, 4 changed'."""
    from support.model_cells import LINEAR_MODEL

    snapshot(snap_compare, recorded_app("linear_model"), running(LINEAR_MODEL), size=(80, 24))


def _training(*cells: str) -> Callable[[Pilot], Awaitable[None]]:
    from support.recorder import BACKWARD_TWICE, TRAINING_LOOP, TRAINING_SETUP

    sources = {"setup": TRAINING_SETUP, "loop": TRAINING_LOOP, "twice": BACKWARD_TWICE}
    return running(*(sources[cell] for cell in cells))


def test_a_training_loop_is_one_backward_entry(snap_compare: SnapCompare) -> None:
    """A 300-step training loop in one cell, then F3: the backward log's one entry, focused:
    'In [2] steps 1–300', 'loss.backward() × 300', via MeanBackward0 → PowBackward0 → …
    (12 nodes), 'between each two calls the grads were cleared (set to None: opt.zero_grad()
    or x.grad = None), so each call wrote them fresh', 'grad norm' with its sparkline falling
    from 0.887 to 0.09934, the norms of model.2.bias.grad … model.0.weight.grad first → last,
    'described: steps 1–25 and 276–300; the 250 between counted, their norms kept' and
    '▸ Enter: the 50 calls described, one by one'."""
    snapshot(snap_compare, recorded_app("training_loop"), then(_training("setup", "loop"), "f3"))


def test_a_training_loops_entry_unfolded(snap_compare: SnapCompare) -> None:
    """The same after Enter: the entry ends '▾ Enter folds the calls', then one line per call
    described: 'step 1  norm 0.887  4 grads fresh', 'step 2  norm 0.7…', … (the list goes on
    below the pane's edge: '… 250 calls counted, not described (steps 26–275)' and steps
    276–300 follow it)."""
    snapshot(snap_compare, recorded_app("training_loop"), then(_training("setup", "loop"), "f3", "enter"))


def test_a_failed_backward_call_in_the_log(snap_compare: SnapCompare) -> None:
    """After the loop, a cell calling r.backward() twice: the transcript ends with the
    RuntimeError (backward through the graph a second time) and its explanation; the backward
    log's last entries are 'In [3] step 1 r.backward()' via SumBackward0 → MulBackward0 →
    AccumulateGrad with w.grad fresh → [3, 3], then 'In [3] step 2 r.backward()', 'reached
    SumBackward0 → MulBackward0' (no 'via': it did not run through) and in red 'failed:
    RuntimeError: Trying to backward through the graph a second time …', the error cut
    after its first phrase (the transcript has it whole)."""
    snapshot(snap_compare, recorded_app("training_loop"), _training("setup", "loop", "twice"))


def test_the_backward_stepper(snap_compare: SnapCompare) -> None:
    """The seed resumed, then F3, Up, Enter, s, n: 'the chain rule, node by node' for
    z.backward(gradient=v): at the left the call's graph (#1 ViewBackward0 → z, #2
    MulBackward0, #3 AccumulateGrad → x), the cursor on #2; at the right 'step 2 of 3:
    MulBackward0', its rule in bold green 'grad_self = grad · other = [[2, 0.2], [0.01,
    0.001]]… · 2 = [4, 0.4, 0.02, 0.002]', grad in, the saved other, and grad out → step 3
    AccumulateGrad."""
    snapshot(snap_compare, recorded_app("seed", script=SEED), then(settled, "f3", "up", "enter", "s", "n"))


def test_the_backward_stepper_at_80x24(snap_compare: SnapCompare) -> None:
    """The same stepper at 80x24, on its last node: the graph above, the step below it
    ('step 3 of 3: AccumulateGrad → x.grad', 'x.grad += grad = [4, 0.4, 0.02, 0.002]')."""
    snapshot(snap_compare, recorded_app("seed", script=SEED), then(settled, "f3", "up", "enter", "s", "end"),
             size=(80, 24))


def test_where_the_nan_was_born(snap_compare: SnapCompare) -> None:
    """`gradrepl --nan-check examples/nan_origin.py` once its 2 cells ran: under In [2]
    (loss.backward(); w.grad = tensor([nan, nan, nan, nan])) the backward log's entry and the
    note in the transcript 'the first non-finite value: PowBackward0 passed on 4 nan of 4 from
    finite gradients, at nan_origin.py, line 18 (In [1]) (where its node was made)' with the
    line's text, 'not made here: its saved self (shifted) holds 4 nan of 4, from the forward
    pass', the gradients in and out and the saved tensor; above, In [1] ends with the forward birth at
    torch.log (line 16, input [0.5, 1.25, -0.25, 2], output with its nan). Both in the theme's
    error colour, not the muted italic of notes."""
    snapshot(snap_compare, recorded_app("nan_origin", script=ROOT / "examples" / "nan_origin.py"))


def test_gradient_health_over_steps(snap_compare: SnapCompare) -> None:
    """`gradrepl examples/vanishing_gradients.py` once its 3 cells ran: under In [2] (the 20
    training steps) the alert in the error colour 'vanishing gradients in model.0, model.2:
    ‖grad‖/‖param‖ down to 4.855e-08 (below 1e-06) at backward call 20'; the inspector's
    model row with the ‖g‖/‖w‖ column's sparkline (its smallest-ratio tensor's trend)."""
    snapshot(snap_compare, recorded_app("vanishing", script=ROOT / "examples" / "vanishing_gradients.py"))


def test_gradient_health_in_a_tensors_detail(snap_compare: SnapCompare) -> None:
    """The same, then F2, Enter (the model row unfolds), Down, Enter (its layer 0 unfolds), Down, Enter:
    its detail ends with 'grad over calls': a sparkline of ‖grad‖ and one of ‖grad‖/‖param‖
    (log scale) over the 20 calls, first and last values, '(20 points, calls 1-20)'."""
    snapshot(snap_compare, recorded_app("vanishing", script=ROOT / "examples" / "vanishing_gradients.py"),
             then(settled, "f2", "enter", "down", "enter", "down", "enter"))
