"""Headless replay: a script's code cells in, a notebook-like transcript out.

The same engine as the app, without the UI: each code cell runs in a fresh kernel, in
order, and each finished cell becomes a CellRecord that a writer prints as text or as
one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

from gradrepl.cells import Cell, Script, skip_reason
from gradrepl.client.events import CellOutcome, CellStatus, Display, Error, OutputCut, Result, Stream, strip_ansi
from gradrepl.client.session import KernelSession
from gradrepl.protocol import (
    EXPLODING_RATIO,
    VANISHING_RATIO,
    BackwardEvent,
    ErrorFrame,
    Explanation,
    HealthAlert,
    NonFinite,
    TensorInfo,
)
from gradrepl.render.backward_text import backward_transcript
from gradrepl.render.explain import explain_report
from gradrepl.render.health import alert_lines, alerts
from gradrepl.render.nonfinite_text import birth_lines

LIBRARY_FRAMES_SHOWN = 1
EMPTY_CELL = "empty cell"  # the skip reason of a blank code cell: Jupyter does not run one either


class SetupError(Exception):
    """The set-up code run before a script's cells failed; str() says how."""


@dataclass(frozen=True)
class CellError:
    ename: str
    evalue: str
    traceback: tuple[str, ...]  # the short form: frames in the script, and the innermost one
    line: int | None  # the script line that raised

    def to_json(self) -> dict[str, Any]:
        return {"ename": self.ename, "evalue": self.evalue, "traceback": list(self.traceback), "line": self.line}


@dataclass(frozen=True)
class CellRecord:
    """One executed code cell, as the transcript and `--json` report it."""

    cell: int
    line: int
    source: str
    status: CellStatus | Literal["skipped"]  # skipped: its marker says not to run it (reason says why)
    execution_count: int | None
    stdout: str
    stderr: str
    result: str | None
    error: CellError | None
    tensors: tuple[TensorInfo, ...]
    backward: tuple[BackwardEvent, ...]
    displays: list[str] = field(default_factory=list)
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    explanation: Explanation | None = None  # for a known autograd error
    nonfinite: tuple[NonFinite, ...] = ()  # --nan-check: where NaN or Inf was born, first first
    alerts: tuple[HealthAlert, ...] = ()  # vanishing or exploding gradients the cell's calls showed
    outputs: tuple[dict[str, Any], ...] = ()  # as a notebook stores them (nbformat 4), in the order they came

    def to_json(self) -> dict[str, Any]:
        """The `--json` line of this cell (the README lists its fields)."""
        return {
            "cell": self.cell, "line": self.line, "source": self.source, "status": self.status,
            "execution_count": self.execution_count, "stdout": self.stdout, "stderr": self.stderr,
            "result": self.result, "error": None if self.error is None else self.error.to_json(), "tensors": [t.to_json() for t in self.tensors],
            "backward": [e.to_json() for e in self.backward], "displays": self.displays, "reason": self.reason,
            "notes": self.notes, "explanation": None if self.explanation is None else self.explanation.to_json(),
            "nonfinite": [n.to_json() for n in self.nonfinite], "alerts": [a.to_json() for a in self.alerts],
        }


REPEATS_SHOWN = 3  # as Python's own tracebacks: the rest of a run of one frame is counted


def short_traceback(frames: tuple[ErrorFrame, ...], script_name: str) -> list[str]:
    """The frames a reader needs: every one in the script, and the innermost library frame;
    a frame repeated (recursion) is shown three times, then counted, as Python does."""
    entries: list[tuple[str, ...]] = []
    first_in_script = next((i for i, f in enumerate(frames) if f.in_script), 0)
    frames = frames[first_in_script:]  # what comes before is the kernel's own machinery
    hidden = 0
    for index, frame in enumerate(frames):
        innermost = index == len(frames) - 1
        if not frame.in_script and not innermost:
            hidden += 1
            continue
        if hidden:
            entries.append((f"  ... {hidden} frame{'s' if hidden > 1 else ''} in library code",))
            hidden = 0
        if frame.in_script:
            where = f'File "{script_name}", line {frame.script_line}'
        else:
            where = f'File "{frame.filename}", line {frame.lineno}'
        entries.append((f"  {where}, in {frame.name}", *([f"    {frame.text}"] if frame.text else [])))
    lines = ["Traceback (most recent call last):"]
    run = 0
    for index, entry in enumerate(entries):
        run = run + 1 if index and entry == entries[index - 1] else 1
        if run <= REPEATS_SHOWN:
            lines += entry
        if run > REPEATS_SHOWN and (index + 1 == len(entries) or entries[index + 1] != entry):
            more = run - REPEATS_SHOWN
            lines.append(f"  [Previous line repeated {more} more time{'s' if more > 1 else ''}]")
    return lines


def record_from(cell: Cell, number: int, outcome: CellOutcome, script_name: str) -> CellRecord:
    report = outcome.report
    finished = outcome.finished
    error = outcome.error
    cell_error: CellError | None = None
    explanation: Explanation | None = None
    if error is not None:
        frames = report.frames if report else ()
        traceback = short_traceback(frames, script_name) if frames else strip_ansi("\n".join(error.traceback)).splitlines()
        script_lines = [f.script_line for f in frames if f.in_script]
        cell_error = CellError(error.ename, error.evalue, tuple(traceback), script_lines[-1] if script_lines else None)
        explanation = explain_report(error.ename, error.evalue, finished.execution_count if finished else None, report)
    result = outcome.result
    return CellRecord(
        cell=number,
        line=cell.line,
        source=cell.source,
        status=outcome.status,
        execution_count=finished.execution_count if finished else None,
        stdout=outcome.stream_text("stdout"),
        stderr=outcome.stream_text("stderr"),
        result=result.text if result is not None else None,
        error=cell_error,
        tensors=report.tensors if report else (),
        backward=report.backward if report else (),
        displays=[e.text for e in outcome.events if isinstance(e, Display)],
        reason=finished.reason if finished else "",
        notes=[*(report.notes if report else ()), *(e.note for e in outcome.events if isinstance(e, OutputCut))],
        explanation=explanation,
        nonfinite=report.nonfinite if report else (),
        outputs=notebook_outputs(outcome),
    )


def notebook_outputs(outcome: CellOutcome) -> tuple[dict[str, Any], ...]:
    """The cell's outputs as Jupyter stores them in a notebook: streams (one output per run of
    a stream, as Jupyter merges them), results and displays with every MIME type, errors with
    the kernel's traceback."""
    outputs: list[dict[str, Any]] = []
    for event in outcome.events:
        if isinstance(event, Stream):
            last = outputs[-1] if outputs else None
            if last is not None and last["output_type"] == "stream" and last["name"] == event.name:
                last["text"] += event.text
            else:
                outputs.append({"output_type": "stream", "name": event.name, "text": event.text})
        elif isinstance(event, Result):
            outputs.append({"output_type": "execute_result", "execution_count": event.execution_count,
                            "data": dict(event.data), "metadata": {}})
        elif isinstance(event, Display):
            outputs.append({"output_type": "display_data", "data": dict(event.data), "metadata": {}})
        elif isinstance(event, Error):
            outputs.append({"output_type": "error", "ename": event.ename, "evalue": event.evalue,
                            "traceback": list(event.traceback)})
    return tuple(outputs)


def skipped_record(cell: Cell, number: int, reason: str) -> CellRecord:
    return CellRecord(
        cell=number, line=cell.line, source=cell.source, status="skipped", execution_count=None, stdout="",
        stderr="", result=None, error=None, tensors=(), backward=(), reason=reason,
    )


def runnable(cell: Cell) -> tuple[str, int]:
    """The code to send and the file line of its first line (IPython drops leading blank lines)."""
    lines = cell.source.splitlines(keepends=True)
    skipped = 0
    while skipped < len(lines) and not lines[skipped].strip():
        skipped += 1
    return "".join(lines[skipped:]), cell.line + skipped


async def replay(
    script: Script,
    on_record: Callable[[CellRecord], None],
    *,
    keep_going: bool = False,
    cell_timeout: float | None = None,
    session: KernelSession | None = None,
    stopped: Callable[[], bool] = lambda: False,
    thresholds: tuple[float, float] = (VANISHING_RATIO, EXPLODING_RATIO),
    setup: str | None = None,
) -> int:
    """Run every code cell; return the exit code (0 all ran, 1 a cell failed). No cell
    starts once `stopped()` is true (the user pressed Ctrl+C). `thresholds`: the ‖grad‖/‖param‖
    below which a module's gradients vanish, above which they explode. `setup` runs first,
    unrecorded and without an execution count (check --seed); if it fails, nothing else runs
    and the error is raised as SetupError."""
    path = script.path
    script_name = path.name if path else "<script>"
    own_session = session is None
    if session is None:
        session = KernelSession(cwd=path.parent if path else None)
    failed = False
    restarted_after: int | None = None
    judged: dict[str, int] = {}  # a tensor's name -> its last backward call judged for alerts
    try:
        await session.start()  # check starts the next file's kernel ahead: then this returns at once
        if setup is not None:
            prepared = await session.run(setup, store_history=False, timeout=cell_timeout)
            if prepared.status != "ok":
                error = prepared.error
                raise SetupError(f"{error.ename}: {error.evalue}" if error else prepared.finished.reason if prepared.finished else "the kernel died")
        for number, cell in enumerate(script.code_cells, start=1):
            if stopped():
                break
            reason = skip_reason(cell) or (None if cell.source.strip() else EMPTY_CELL)
            if reason is not None:
                on_record(skipped_record(cell, number, reason))
                continue
            code, line = runnable(cell)
            origin = {"file": str(path) if path else None, "line": line}
            outcome = await session.run(code, origin=origin, timeout=cell_timeout)
            record = record_from(cell, number, outcome, script_name)
            found = alerts(record.tensors, *thresholds, since=judged)
            if found:
                record = replace(record, alerts=tuple(found))
            judged.update({t.name: t.grad_history.calls[-1] for t in record.tensors if t.grad_history and t.grad_history.calls})
            if restarted_after is not None:
                note = f"ran in a fresh kernel: the kernel was restarted after cell {restarted_after} did not stop"
                record, restarted_after = replace(record, notes=[note, *record.notes]), None
            if session.stuck and keep_going and number < len(script.code_cells) and not stopped():
                # Every later cell would wait behind it: a fresh kernel runs them instead.
                await session.restart()
                restarted_after = number
                record = replace(record, reason=f"{record.reason}; the kernel was restarted, the cells after it run in a fresh kernel")
            on_record(record)
            if record.status != "ok":
                failed = True
                if record.status == "died" or not keep_going or stopped():
                    break
    finally:
        if own_session:
            await session.shutdown()
    return 1 if failed else 0


# ---------------------------------------------------------------- writers


class JsonLinesWriter:
    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, record: CellRecord) -> None:
        self.out.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
        self.out.flush()


class TextWriter:
    """A notebook-like transcript; source highlighted with pygments when `color` is on."""

    def __init__(self, out: IO[str], script_name: str, color: bool, node_grads: bool = False,
                 thresholds: tuple[float, float] = (VANISHING_RATIO, EXPLODING_RATIO)) -> None:
        self.out = out
        self.node_grads = node_grads
        self.thresholds = thresholds
        self.script_name = script_name
        self.color = color
        self._highlight: Callable[[str], str] | None = None
        if color:
            from pygments import highlight
            from pygments.formatters import TerminalFormatter
            from pygments.lexers import PythonLexer

            lexer, formatter = PythonLexer(), TerminalFormatter()
            self._highlight = lambda code: highlight(code, lexer, formatter)

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def __call__(self, record: CellRecord) -> None:
        write = self.out.write
        count = record.execution_count if record.execution_count is not None else " "
        where = f"{self.script_name}, line {record.line}" if record.line else self.script_name
        write(self._paint(f"In [{count}]:", "32;1") + self._paint(f"  # {where}", "2") + "\n")
        source = record.source.rstrip("\n") + "\n"
        write(self._highlight(source) if self._highlight else source)
        body: list[str] = []
        if record.stdout:
            body.append(record.stdout)
        if record.stderr:
            body.append(self._paint(record.stderr, "31"))
        for text in record.displays:
            body.append(text + "\n")
        if record.result is not None:
            separator = "\n" if "\n" in record.result else " "
            body.append(self._paint(f"Out[{count}]:", "31;1") + separator + record.result + "\n")
        if record.error is not None:
            lines = [*record.error.traceback, f"{record.error.ename}: {record.error.evalue}"]
            body.append(self._paint("\n".join(lines), "31") + "\n")
        if record.explanation is not None:
            explained = record.explanation
            body.append(self._paint(f"[explain] {explained.title}", "33;1") + "\n")
            body.append(self._paint(f"  Why: {explained.why}", "33") + "\n")
            body.append(self._paint(f"  Fix: {explained.fix}", "33") + "\n")
        if record.status == "skipped":
            body.append(self._paint(f"[not run (skipped: {record.reason})]", "33") + "\n")
        if record.status in ("timeout", "died") or (record.status == "error" and record.error is None and record.reason):
            label = {"timeout": "timed out", "died": "kernel died"}.get(record.status, "kernel error")
            body.append(self._paint(f"[{label}: {record.reason}]", "31;1") + "\n")
        cell_error = f"{record.error.ename}: {record.error.evalue}" if record.error is not None else None
        for tag, line in backward_transcript(record.backward, cell_error, self.node_grads):
            body.append(self._paint(f"[{tag}] ", "36") + line + "\n")
        for line in birth_lines(record.nonfinite):
            body.append(self._paint("[nan] ", "31;1") + line + "\n")
        for line in alert_lines(record.alerts, *self.thresholds):
            body.append(self._paint("[health] ", "33;1") + line + "\n")
        for note in record.notes:
            body.append(self._paint(f"[gradrepl: {note}]", "2") + "\n")
        if body:
            write("\n" + "".join(body))
        write("\n")
        self.out.flush()


def writer_for(json_lines: bool, script_path: Path | None, out: IO[str] = sys.stdout,
               node_grads: bool = False, thresholds: tuple[float, float] = (VANISHING_RATIO, EXPLODING_RATIO),
               ) -> Callable[[CellRecord], None]:
    if json_lines:
        return JsonLinesWriter(out)
    name = script_path.name if script_path else "<script>"
    color = out.isatty() and not os.environ.get("NO_COLOR")
    return TextWriter(out, name, color=color, node_grads=node_grads, thresholds=thresholds)
