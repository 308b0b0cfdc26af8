"""What the scale rows of the bench feed the app and read from it: checked here without an
app or a kernel, so that a row cannot measure something other than it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from benchmarks.model_inspector import HUNDRED_LAYERS, report_sizes
from benchmarks.session_scale import MARKER, long_script, printing, until_drawn


def test_the_long_session_script_has_its_cells_each_printing_its_marker(tmp_path: Path) -> None:
    from gradrepl.cells import read_script

    cells = [cell.source for cell in read_script(long_script(tmp_path / "long.py", 5)).code_cells]
    assert len(cells) == 5 and cells[0].strip() == "import torch"
    assert [MARKER.findall(source) for source in cells[1:]] == [["0001"], ["0002"], ["0003"], ["0004"]]


def test_a_printing_cells_first_line_is_in_its_output_only() -> None:
    source = printing(3, "B1x")
    assert "B1x000000" not in source  # its source, drawn in the transcript, cannot stand for its output
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(source, {})
    assert out.getvalue().splitlines()[0] == "B1x000000 " + "." * 40 and len(out.getvalue()) == 3 * 51


def test_the_hundred_layer_model_has_two_thousand_parameter_tensors() -> None:
    namespace: dict[str, object] = {}
    exec(HUNDRED_LAYERS.setup, namespace)
    model = namespace["model"]
    assert len(list(model.parameters())) == HUNDRED_LAYERS.parameters == 2000  # type: ignore[attr-defined]


def test_report_sizes_counts_each_report_taken_and_puts_the_front_end_back() -> None:
    from gradrepl.client.events import ProbeState

    original = ProbeState.report_from
    with report_sizes() as (sizes, entries):
        ProbeState().report_from({"execution_count": 1, "notes": ["…"], "backward": []})
    assert sizes == [len('{"execution_count":1,"notes":["…"],"backward":[]}'.encode())] and entries == [0]
    assert ProbeState.report_from is original


class FakeTerminal:
    label = "fake"

    def __init__(self, chunks: list[str]) -> None:
        self.drawn, self.chunks = "", chunks

    def read(self, timeout: float) -> str:
        new = self.chunks.pop(0) if self.chunks else ""
        self.drawn += new
        return new

    def last_text(self) -> str:
        return self.drawn


def test_a_scroll_counts_only_cells_above_the_last_frame() -> None:
    # A redraw of what was on screen (cells 990 and up) does not end the wait; cell 0984 does.
    terminal = FakeTerminal(["cell-0995 cell-0990", "cursor", "cell-0984"])
    until_drawn(terminal, MARKER, 0.0, 5.0, lambda match: int(match.group(1)) < 990)  # type: ignore[arg-type]
    assert terminal.chunks == [] and re.search("0984", terminal.drawn)


def test_snapshot_1e8_times_the_snapshot_with_the_collector_off_as_the_probe_makes_it(monkeypatch) -> None:
    import gc

    import torch

    import gradrepl.inkernel.snapshot as snapshot_module
    from benchmarks import probe as probe_rows

    real = snapshot_module.snapshot
    collecting: list[bool] = []

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        collecting.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(snapshot_module, "snapshot", watched)
    snap, *_ = probe_rows.snapshot_samples(torch.randn(4, 4), 3)
    assert len(snap) == 3 and collecting[-3:] == [False, False, False]
    assert gc.isenabled()
