"""`gradrepl check`'s comparison from text alone (no kernel): tensor reprs read as numbers with
the rounding of their printout, normalisers, nbval's markers and sanitize files, verdicts, and
the forms the results are told in."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from gradrepl.cells import Cell
from gradrepl.check.compare import Comparison, diff_lines, judge
from gradrepl.check.expected import Outputs, cell_lines, golden_line
from gradrepl.check.markers import CellDirectives, directives
from gradrepl.check.normalise import Normaliser, SanitizeError, sanitize_rules
from gradrepl.check.report import github_annotations, summary_line, write_junit
from gradrepl.check.runner import FileResult
from gradrepl.check.tensor_text import Tolerance, pieces, reconcile

GRAD = "tensor([[0.5000, 1.0000],\n        [1.5000, 2.0000]])"


def differs(expected: str, printed: str) -> list[str]:
    """The mismatch reasons; [] when the two agree."""
    reconciled, mismatches = reconcile(expected, printed, Tolerance())
    return [m.reason for m in mismatches] if reconciled != expected else []


def test_a_float32_repr_changed_in_its_last_printed_digit_agrees() -> None:
    assert differs(GRAD, GRAD.replace("0.5000", "0.5001")) == []
    assert differs("tensor(7.5000, grad_fn=<MeanBackward0>)", "tensor(7.4999, grad_fn=<MeanBackward0>)") == []
    assert differs("tensor([1.0000e-03])", "tensor([1.0001e-03])") == []
    assert differs(GRAD, GRAD.replace("\n        ", " ")) == []  # wrapped differently


def test_a_gradient_that_really_changed_is_named_by_its_value() -> None:
    (reason,) = differs(GRAD, GRAD.replace("1.5000", "1.7500"))
    assert reason == "value 3 of 4: 1.5000 expected, 1.7500 printed (off by 0.25; allowed: 0.000112)"
    assert differs(GRAD, GRAD.replace("0.5000", "0.5002"))  # two units of the last digit: not a rounding


def test_what_is_not_a_value_compares_exactly() -> None:
    assert differs("tensor([1, 2])", "tensor([1, 3])") == ["value 2 of 2: 2 expected, 3 printed (integers compare exactly)"]
    assert differs("tensor([2.], grad_fn=<MulBackward0>)", "tensor([2.], grad_fn=<AddBackward0>)") == [
        "grad_fn=<MulBackward0> expected, grad_fn=<AddBackward0> printed"]
    assert differs("tensor([1., 2.], requires_grad=True)", "tensor([1., 2.])") == ["requires_grad=True expected, none printed"]
    assert differs("tensor([1., 2.])", "tensor([[1., 2.]])") == ["the shape or the cut of the values differs"]
    assert differs("tensor([1., 2.], dtype=torch.float64)", "tensor([1., 2.], dtype=torch.float64)") == []
    assert differs("tensor([nan, inf])", "tensor([nan, inf])") == [] and differs("tensor([nan])", "tensor([1.])")
    assert differs("y = tensor([1.])", "z = tensor([1.])") == []  # text differences are the diff's, not a mismatch
    assert reconcile("y = tensor([1.])", "z = tensor([1.])", Tolerance())[0] == "z = tensor([1.])"


def test_floats_in_text_are_compared_as_numbers_only_when_asked() -> None:
    expected, printed = "loss 0.6931471824645996\n", "loss 0.6931471824645991\n"
    assert reconcile(expected, printed, Tolerance())[0] == printed
    assert reconcile(expected, printed, Tolerance(floats=True))[0] == expected
    assert reconcile("step 3 loss 0.25", "step 4 loss 0.25", Tolerance(floats=True))[0] == "step 4 loss 0.25"


def test_reprs_are_found_inside_text_with_their_suffixes() -> None:
    found = pieces("x.grad = tensor([True, False]) and tensor([], size=(0, 3)), device='cpu'")
    tensors = [p for p in found if not isinstance(p, str)]
    assert [(t.layout, t.suffix) for t in tensors] == [("[#,#]", ""), ("[]", ",size=(0,3)")]  # type: ignore[union-attr]
    assert pieces("my_tensor(3) is not a repr") == ["my_tensor(3) is not a repr"]


def test_normalisers_drop_what_changes_from_run_to_run() -> None:
    normal = Normaliser()
    assert normal("<Foo object at 0x7f3a2b1c4d50>") == "<Foo object at 0x<address>>"
    assert normal("\x1b[31mred\x1b[0m") == "red"
    assert normal("/tmp/ipykernel_4711/2293.py:3: UserWarning") == "<cell file>:3: UserWarning"
    assert normal("saved to /tmp/pytest-9/run1/model.pt") == "saved to <temp path>"
    assert normal("at 2026-12-03 14:05:01.123 took 1.25 s, 30ms") == "at <timestamp> took <duration>, <duration>"
    assert normal("3 sizes") == "3 sizes"


def test_a_sanitize_file_in_nbvals_format_adds_rules(tmp_path: Path) -> None:
    rules = tmp_path / "sanitize.cfg"
    rules.write_text("[dates]\nregex: \\d{1,2}/\\d{1,2}/\\d{4}\nreplace: DATE\n\n[drop]\nregex: epoch \\d+\n")
    assert Normaliser(sanitize_rules([rules]))("on 3/12/2026 at epoch 7") == "on DATE at "
    bad = tmp_path / "bad.cfg"
    bad.write_text("[x]\nregex: (\n")
    with pytest.raises(SanitizeError, match=r"section \[x\]: not a regular expression"):
        sanitize_rules([bad])
    with pytest.raises(SanitizeError, match="cannot read the sanitize file"):
        sanitize_rules([tmp_path / "missing.cfg"])


@pytest.mark.parametrize(("source", "metadata", "found"), [
    ("# NBVAL_IGNORE_OUTPUT\nprint(1)", (), CellDirectives(ignore=True)),
    ("x = 1\n  #NBVAL_RAISES_EXCEPTION\n", (), CellDirectives(raises=True)),
    ("print(1)  # NBVAL_SKIP in a comment after code is not a marker", (), CellDirectives()),
    ("x", (("tags", '["raises-exception", "nbval-check-output"]'),), CellDirectives(check=True, raises=True)),
    ("x", (("tags", '["skip-execution"]'),), CellDirectives(skip=True)),
])
def test_nbval_markers_and_tags_are_read(source: str, metadata: tuple[tuple[str, str], ...], found: CellDirectives) -> None:
    assert directives(Cell("code", source, metadata=metadata)) == found


def test_verdicts_follow_nbval() -> None:
    comparison = Comparison()
    ok = Outputs(stdout="1\n")
    error = Outputs(error=("NameError", "name 'x' is not defined"))
    run = CellDirectives()
    assert judge(1, 3, "ok", "", ok, ok, run, comparison, lax=False).verdict == "passed"
    unexpected = judge(1, 3, "error", "", error, error, run, comparison, lax=False)
    assert unexpected.verdict == "failed" and unexpected.summary.startswith("raised NameError unexpectedly")
    assert judge(1, 3, "error", "", error, error, CellDirectives(raises=True), comparison, lax=False).verdict == "passed"
    assert judge(1, 3, "ok", "", ok, ok, CellDirectives(raises=True), comparison, lax=False).summary == \
        "expected to raise an exception, and it did not"
    changed = Outputs(stdout="2\n")
    assert judge(1, 3, "ok", "", ok, changed, run, comparison, lax=False).verdict == "failed"
    assert judge(1, 3, "ok", "", ok, changed, run, comparison, lax=True).verdict == "passed"  # --lax: only marked cells
    assert judge(1, 3, "ok", "", ok, changed, CellDirectives(check=True), comparison, lax=True).verdict == "failed"
    assert judge(1, 3, "ok", "", ok, changed, CellDirectives(ignore=True), comparison, lax=False).verdict == "passed"
    assert judge(1, 3, "timeout", "after 2 s", ok, ok, run, comparison, lax=False).summary == "timed out: after 2 s"


def test_a_difference_shows_only_the_lines_that_differ_and_the_parts_missing() -> None:
    assert diff_lines("a\nb\nc\n", "a\nB\nc\n") == ["- b", "+ B"]
    (stdout, out) = Comparison().differences(Outputs(stdout="a\n"), Outputs(stdout="a\nb\n", result="3"))
    assert (stdout.part, stdout.lines) == ("stdout", ("+ b",))
    assert (out.part, out.lines) == ("Out", ("printed, not expected: 3",))
    assert Comparison(ignore_stderr=True).differences(Outputs(stderr="warning"), Outputs()) == ()


def test_a_notebooks_cells_are_found_at_their_lines() -> None:
    text = json.dumps({"cells": [{"cell_type": "markdown", "source": 'say "cell_type": no'},
                                 {"cell_type": "code", "source": "x"}]}, indent=1)
    lines = cell_lines(text)
    assert len(lines) == 2 and [text.splitlines()[n - 1].strip() for n in lines] == ['"cell_type": "markdown",', '"cell_type": "code",']


def test_a_golden_line_keeps_what_was_printed_not_the_snapshot() -> None:
    record = {"cell": 1, "line": 2, "source": "x", "status": "error", "execution_count": 1, "stdout": "", "stderr": "",
              "result": None, "displays": [], "tensors": [{"name": "x"}], "backward": [],
              "error": {"ename": "E", "evalue": "v", "traceback": ["/home/me/..."], "line": 2}}
    assert golden_line(record) == {"cell": 1, "line": 2, "source": "x", "status": "error", "execution_count": 1, "stdout": "",
                                   "stderr": "", "result": None, "displays": [], "error": {"ename": "E", "evalue": "v", "line": 2}}


def test_results_are_told_to_ci_as_junit_and_github_annotations(tmp_path: Path) -> None:
    from gradrepl.check.compare import CellVerdict, Difference

    failed = CellVerdict(2, 40, "failed", "output differs", (Difference("stdout", ("- a", "+ b")),))
    result = FileResult(Path("lesson.ipynb"), (CellVerdict(1, 12, "passed", "output matches"), failed))
    assert github_annotations(result) == ["::error file=lesson.ipynb,line=40,title=gradrepl check cell 2::"
                                   "output differs%0Astdout:%0A- a%0A+ b"]
    assert summary_line([result], update=False) == "1 passed, 1 failed in 1 file"
    write_junit(tmp_path / "j.xml", [result])
    suite = ElementTree.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "1")
    (failure,) = suite.iter("failure")
    assert failure.get("message") == "output differs" and "+ b" in (failure.text or "")


@pytest.mark.parametrize(("first", "ahead"), [
    ("import torch\nx = 1", True), ("import torch.nn as nn", True), ("from torch import nn", True),
    ("import numpy, torch", False), ("import os\nos.environ['OMP_NUM_THREADS'] = '1'\nimport torch", False),
    ("%matplotlib inline\nimport torch", False), ("from .torch import x", False), ("", False),
])
def test_torch_is_imported_ahead_only_when_it_is_the_lessons_first_statement(tmp_path: Path, first: str, ahead: bool) -> None:
    from gradrepl.check.runner import imports_torch_first

    lesson = tmp_path / "lesson.py"
    lesson.write_text(f"# %%\n{first}\n\n# %%\nprint(1)\n")
    assert imports_torch_first(lesson) is ahead
