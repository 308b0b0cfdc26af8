"""Snapshot tests: every screen of the app as SVG, checked against the approved ones in
tests/__snapshots__/. Update after a deliberate change with `scripts/test --snapshot-update`
and look at the SVGs (pytest writes snapshot_report.html on a mismatch).

Each test's docstring says what a reviewer should see in its picture.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from gradrepl.cells import read_script
from gradrepl.ui.app import GradReplApp
from gradrepl.ui.state.history import History
from gradrepl.ui.widgets.code_input import CodeInput
from support.screens import layout_settled

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "seed_autograd.py"


@pytest.fixture(autouse=True)
def repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    """The status line shows the script path relative to the working directory."""
    monkeypatch.chdir(ROOT)


def seed_app() -> GradReplApp:
    return GradReplApp(read_script(SEED), history=History(None), cwd=SEED.parent, stable=True)


def fresh_app() -> GradReplApp:
    return GradReplApp(history=History(None), stable=True)


async def settled(pilot: Pilot) -> None:
    app = pilot.app
    assert isinstance(app, GradReplApp)
    await app.until_idle()
    await pilot.pause()
    # Panes scroll to their end after the refresh that follows new entries: let that settle.
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await layout_settled(pilot)


def running(*cells: str) -> Callable[[Pilot], Awaitable[None]]:
    """Wait for the kernel, then run `cells` one after another as if typed."""

    async def run(pilot: Pilot) -> None:
        await settled(pilot)
        app = pilot.app
        for source in cells:
            app.query_one(CodeInput).load_text(source)
            await pilot.press("ctrl+r")
            await settled(pilot)

    return run


def test_empty_session(snap_compare) -> None:
    """A fresh session at 120x40: empty transcript with its hint, empty backward log, no
    tensors, the input with its placeholder, status line 'kernel idle, 0 cells run, no file',
    and the footer with Interrupt, Run, Quit, Save, Help and the palette key."""
    assert snap_compare(fresh_app(), terminal_size=(120, 40), run_before=settled)


def test_seed_resumed(snap_compare) -> None:
    """`gradrepl examples/seed_autograd.py` once all 12 cells ran: the transcript scrolled to
    the last cells (x.data *= 100, with x = tensor([100.]) and x.grad = tensor([2.])), the
    backward log ending with the seed's three backward calls (v_out.backward, then
    z.backward(gradient=[[2, 0.2], [0.01, 0.001]]) with x.grad [4, 0.4, 0.02, 0.002], then
    y.backward() with x.grad [2]), each with its graph nodes; the inspector listing tensor,
    varibale (grad [[0.5, 1], [1.5, 2]]), v_out, x, y, z, v, y1, y2, y3; a notice 'Resumed
    examples/seed_autograd.py: 12 cells ran'; status line 'kernel idle, 12 cells run'."""
    assert snap_compare(seed_app(), terminal_size=(120, 40), run_before=settled)


def test_detail_of_varibale(snap_compare) -> None:
    """The seed resumed, then F2, Down, Enter on the inspector: the detail of `varibale`:
    shape (2, 2) float32 cpu, requires_grad yes, is_leaf yes, grad_fn None, version 0,
    data [[1, 2], [3, 4]] as a matrix and grad [[0.5, 1], [1.5, 2]], each with its stats."""

    async def open_detail(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("f2", "down", "enter")
        await pilot.pause()

    assert snap_compare(seed_app(), terminal_size=(120, 40), run_before=open_detail)


def test_backward_cell_run_three_times(snap_compare) -> None:
    """The seed's first cells typed in a fresh session and its backward cell run three
    times: the transcript ends with Out[7] showing tensor([[1.5000, 3.0000], [4.5000,
    6.0000]]) as the notebook printed; the backward log has three entries, each
    'v_out.backward(retain_graph=True) via MeanBackward0 -> MulBackward0 -> AccumulateGrad',
    with varibale.grad fresh, accumulated, accumulated, going [[0.5, 1], [1.5, 2]] -> [[1, 2],
    [3, 4]] -> [[1.5, 3], [4.5, 6]]; the inspector's varibale row shows that grad."""
    run = running(
        "import torch",
        "tensor = torch.FloatTensor([[1, 2], [3, 4]])\nvaribale = tensor.clone().requires_grad_(True)",
        "v_out = torch.mean(varibale * varibale)",
        "v_out.backward(retain_graph=True)",
        "v_out.backward(retain_graph=True)",
        "v_out.backward(retain_graph=True)",
        "varibale.grad",
    )
    assert snap_compare(fresh_app(), terminal_size=(120, 40), run_before=run)


def test_a_cell_that_raises(snap_compare) -> None:
    """A leaf that requires grad changed in place: In [2] shows the RuntimeError traceback
    (no rule of dashes; 'Cell In[2], line 1', then 'a leaf Variable that requires grad is
    being used in an in-place operation.'), and under it, in a box with a yellow bar, the
    explanation: 'in-place change of x, a leaf that requires grad in In [2]', Why and Fix
    (torch.no_grad() or x.data); the inspector still lists x; the kernel is idle."""
    run = running("import torch\nx = torch.ones(2, 2, requires_grad=True)", "x.add_(1)")
    assert snap_compare(fresh_app(), terminal_size=(120, 40), run_before=run)


def test_help_screen(snap_compare) -> None:
    """F1: the help screen over the app, with the keys of the code input (Enter, Ctrl+J,
    Ctrl+R, Up/Down, Tab), the keys that work anywhere, and what the two panes mean."""

    async def open_help(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(fresh_app(), terminal_size=(120, 40), run_before=open_help)


def test_seed_resumed_at_80x24(snap_compare) -> None:
    """The resumed seed on a small terminal: every pane still there and readable, the
    inspector scrolled to what the last cell changed (x, y) with name, shape, grad_fn, data
    and grad inside the pane (no sideways scrolling; a long preview cut with '…'), the
    footer on one line."""
    assert snap_compare(seed_app(), terminal_size=(80, 24), run_before=settled)


def test_graph_with_a_saved_tensor_modified_in_place(snap_compare) -> None:
    """g on `b` in the inspector, where b = (a.sin() * a).sum() and a was then changed in
    place: the graph screen titled 'autograd graph of b', a red line saying 2 saved tensors
    were modified in place and backward will fail, then one chain at the left edge: #0
    SumBackward0 → b, #1 MulBackward0 with 'saved other: 3 float32 (a)' in red (version 1,
    saved at 0), 'saved self: 3 float32' and '#3 MulBackward0 (drawn below)', the reference
    to the node reached twice, #2 SinBackward0 with its red saved self (a), #3 MulBackward0
    (1 input without grad), '#4 AccumulateGrad → x (leaf, 3 float32)'."""
    setup = running("import torch\nx = torch.ones(3, requires_grad=True)\na = x * 3\nb = (a.sin() * a).sum()\na.add_(1)")

    async def open_graph(pilot: Pilot) -> None:
        await setup(pilot)
        await pilot.press("f2", "down", "down", "down", "g")
        screen = pilot.app.screen
        for _ in range(200):
            if getattr(screen, "graph", None) is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(fresh_app(), terminal_size=(120, 40), run_before=open_graph)


def test_backward_call_with_the_vector_jacobian_view(snap_compare) -> None:
    """The seed resumed, then F3, Up, Enter on the backward log: the seed's
    z.backward(gradient=[[2, 0.2], [0.01, 0.001]], retain_graph=True) in full: root z
    (ViewBackward0) = [[2, 4], [6, 8]], the gradient v, retain_graph True, the nodes
    ViewBackward0 → MulBackward0 → AccumulateGrad, x.grad fresh None → [4, 0.4, 0.02, 0.002];
    then the vector-Jacobian view: a line on why v is needed, 'J of z with respect to x ✓
    x.grad gained exactly vᵀ·J' in green, and the table: a v column (2, 0.2, 0.01, 0.001),
    rows ∂z[0, 0] … ∂z[1, 1] of J = 2·I over columns x[0] … x[3], the row vᵀ·J
    4 0.4 0.02 0.002 in bold, and the row 'x.grad gained' with the same numbers."""

    async def open_event(pilot: Pilot) -> None:
        await settled(pilot)
        await pilot.press("f3", "up", "enter")
        await pilot.pause()

    assert snap_compare(seed_app(), terminal_size=(120, 40), run_before=open_event)
