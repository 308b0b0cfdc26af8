"""`gradrepl replay SCRIPT --to-notebook OUT.ipynb`: a valid notebook with the outputs Jupyter
itself stores for the same lesson, and never written over a file it did not write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from support.command_line import gradrepl
from test_check import executed_by_jupyter, notebook

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parent.parent


def coalesced(outputs: list[Any]) -> list[dict[str, Any]]:
    """Outputs with each run of one stream as one output (JupyterLab saves them so; nbclient keeps the pieces)."""
    found: list[dict[str, Any]] = []
    for output in outputs:
        output = dict(output)
        if found and output["output_type"] == "stream" and found[-1]["output_type"] == "stream" \
                and found[-1]["name"] == output["name"]:
            found[-1] = {**found[-1], "text": found[-1]["text"] + output["text"]}
        else:
            found.append(output)
    return found


def test_the_notebook_has_jupyters_outputs_and_keeps_the_markdown(tmp_path: Path) -> None:
    lesson = ROOT / "examples" / "autograd_errors.py"
    out = tmp_path / "run.ipynb"
    done = gradrepl("replay", str(lesson), "--to-notebook", str(out))
    assert done.returncode == 1, done.stderr  # the lesson ends with an uncaught error, on purpose
    ours = nbformat.read(out, as_version=4)
    nbformat.validate(ours)
    from gradrepl.cells import read_script

    script = read_script(lesson)
    assert [(c.cell_type, c.source) for c in ours.cells] == [(c.kind, c.source) for c in script.cells]
    code = [c for c in ours.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert code[-1].metadata["tags"] == ["raises-exception"]
    (error,) = code[-1].outputs
    assert error["output_type"] == "error" and error["ename"] == "RuntimeError" and len(error["traceback"]) > 2

    theirs = notebook(tmp_path / "jupyter.ipynb", *(c.source for c in script.code_cells))
    executed_by_jupyter(theirs)
    expected = [c for c in nbformat.read(theirs, as_version=4).cells if c.cell_type == "code"]
    assert [coalesced(c.outputs) for c in code] == [coalesced(c.outputs) for c in expected]


def test_it_is_written_over_its_own_notebook_only(tmp_path: Path) -> None:
    lesson = tmp_path / "lesson.py"
    lesson.write_text("# %%\nprint('hi')\n")
    out = tmp_path / "run.ipynb"
    assert gradrepl("replay", str(lesson), "--to-notebook", str(out)).returncode == 0
    assert gradrepl("replay", str(lesson), "--to-notebook", str(out)).returncode == 0  # its own: replaced
    assert nbformat.read(out, as_version=4).cells[0].outputs[0]["text"] == "hi\n"
    mine = notebook(tmp_path / "mine.ipynb", "print('mine')")
    before = mine.read_bytes()
    done = gradrepl("replay", str(lesson), "--to-notebook", str(mine))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"gradrepl: --to-notebook '{mine}' exists and was not written by gradrepl replay: "
                           "give another name, or --force to replace it\n")
    assert mine.read_bytes() == before
    assert gradrepl("replay", str(lesson), "--to-notebook", str(mine), "--force").returncode == 0
    assert gradrepl("replay", str(mine), "--to-notebook", str(mine)).returncode == 2  # the script itself
    done = gradrepl("replay", str(lesson), "--to-notebook", str(tmp_path / "run.txt"))
    assert done.returncode == 2 and "ends in .ipynb" in done.stderr
