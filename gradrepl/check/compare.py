"""One code cell's verdict: what it printed against what it was expected to print, each part
(stdout, stderr, Out[], displays, the error) normalised, then compared with tensor reprs read
as numbers; a difference is shown as the lines that differ and, for a tensor, which value."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from gradrepl.check.expected import Outputs
from gradrepl.check.markers import CellDirectives
from gradrepl.check.normalise import Normaliser
from gradrepl.check.tensor_text import Tolerance, reconcile

Verdict = Literal["passed", "failed", "skipped"]
MAX_DIFF_LINES = 40  # of one part; the rest is counted


@dataclass(frozen=True)
class Difference:
    part: str  # "stdout", "stderr", "Out", "display 1", "error"
    lines: tuple[str, ...]  # "- expected", "+ printed" and notes


@dataclass(frozen=True)
class CellVerdict:
    cell: int  # code cell number, from 1
    line: int  # file line of the cell
    verdict: Verdict
    summary: str  # "output differs", "raised NameError unexpectedly", "skipped (NBVAL_SKIP)"
    differences: tuple[Difference, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"cell": self.cell, "line": self.line, "verdict": self.verdict, "summary": self.summary,
                "diff": [{"part": d.part, "lines": list(d.lines)} for d in self.differences]}


@dataclass(frozen=True)
class Comparison:
    tolerance: Tolerance = field(default_factory=Tolerance)
    normalise: Normaliser = field(default_factory=Normaliser)
    ignore_stderr: bool = False

    def parts(self, outputs: Outputs) -> dict[str, str]:
        found = {"stdout": outputs.stdout}
        if not self.ignore_stderr:
            found["stderr"] = outputs.stderr
        for index, text in enumerate(outputs.displays, start=1):
            found[f"display {index}"] = text
        if outputs.result is not None:
            found["Out"] = outputs.result
        if outputs.error is not None:
            found["error"] = ": ".join(outputs.error)
        return found

    def differences(self, expected: Outputs, actual: Outputs) -> tuple[Difference, ...]:
        want, got = self.parts(expected), self.parts(actual)
        found: list[Difference] = []
        for part in [*want, *(p for p in got if p not in want)]:
            a, b = self.normalise(want.get(part, "")), self.normalise(got.get(part, ""))
            if part not in got:
                found.append(Difference(part, (f"expected, not printed: {_first(a)}",)))
                continue
            if part not in want:
                found.append(Difference(part, (f"printed, not expected: {_first(b)}",)))
                continue
            reconciled, mismatches = reconcile(a, b, self.tolerance)
            if reconciled == a:
                continue
            lines = diff_lines(a, reconciled)
            lines += [f"  {m.reason}" for m in mismatches]
            found.append(Difference(part, tuple(lines)))
        return tuple(found)


def _first(text: str) -> str:
    lines = text.strip().splitlines()
    return (lines[0][:100] + (" …" if len(lines) > 1 or len(lines[0]) > 100 else "")) if lines else "(empty)"


def diff_lines(expected: str, actual: str) -> list[str]:
    """The lines that differ: `- ` what was expected, `+ ` what was printed."""
    a, b = expected.splitlines(), actual.splitlines()
    if expected.endswith("\n") != actual.endswith("\n"):
        a, b = [*a, "" if expected.endswith("\n") else "(no newline at the end)"], [*b, "" if actual.endswith("\n") else "(no newline at the end)"]
    lines: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lines += [f"- {line}" for line in a[i1:i2]]
        lines += [f"+ {line}" for line in b[j1:j2]]
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"… and {len(lines) - MAX_DIFF_LINES} more lines differ"]
    return lines


def judge(cell: int, line: int, status: str, reason: str, expected: Outputs | None, actual: Outputs,
          directives: CellDirectives, comparison: Comparison, lax: bool, autograd: Sequence[str] = ()) -> CellVerdict:
    """The verdict of one cell that was run (or skipped: `status` "skipped"); `autograd`: how
    the cell's tensors and backward calls differ from its autograd expectations."""
    if status == "skipped":
        return CellVerdict(cell, line, "skipped", f"skipped ({reason})" if reason else "skipped")
    if status in ("timeout", "died"):
        what = "timed out" if status == "timeout" else "the kernel died"
        return CellVerdict(cell, line, "failed", f"{what}: {reason}" if reason else what)
    if actual.error is not None and not directives.raises:
        return CellVerdict(cell, line, "failed", f"raised {actual.error[0]} unexpectedly: {actual.error[1][:120]}"
                           " (mark it NBVAL_RAISES_EXCEPTION or tag it raises-exception if it should)")
    if directives.raises and actual.error is None:
        return CellVerdict(cell, line, "failed", "expected to raise an exception, and it did not")
    if not directives.compared(lax):
        return CellVerdict(cell, line, "passed", "ran (output not compared)")
    if expected is None:
        return CellVerdict(cell, line, "failed", "no expected output recorded for it: run gradrepl check --update")
    differences = comparison.differences(expected, actual)
    what = "output and autograd differ" if differences and autograd else "output differs" if differences else "autograd differs"
    if autograd:
        differences = (*differences, Difference("autograd", tuple(autograd)))
    if differences:
        changed = "; its code changed since they were recorded" if expected.source not in (None, "") and expected.source != actual.source else ""
        return CellVerdict(cell, line, "failed", f"{what}{changed}", differences)
    return CellVerdict(cell, line, "passed", "output matches")
