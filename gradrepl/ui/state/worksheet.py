"""The session's cells: those resumed from a script and those typed in the app, and saving
them back as a percent script."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from gradrepl.cells import Cell, Script
    from gradrepl.client.events import CellFinished, CellOutcome, Event

_PERCENT = ("percent", "plain")
CellState = Literal["queued", "running", "ok", "error", "timeout", "died", "cancelled"]
_STOPPED_BY_RESTART = "stopped by the kernel restart"  # ui.runner's reason, not imported at start-up
SKIPPED_ON_RESUME = "skipped: "  # the reason of a resumed cell not run for its skip marker
FINAL_STATES = ("ok", "error", "timeout", "died", "cancelled")


@dataclass
class SessionCell:
    """One cell the session has run or will run."""

    number: int  # 1-based, in the order cells were submitted
    source: str
    script_line: int | None = None  # where it came from in the resumed script
    state: CellState = "queued"
    execution_count: int | None = None
    events: list[Event] = field(default_factory=list)
    reason: str = ""
    rerun: bool = False  # run again by "run all": already in the document

    @property
    def from_script(self) -> bool:
        return self.script_line is not None

    @property
    def outcome(self) -> CellOutcome:
        from gradrepl.client.events import CellOutcome  # loaded with the kernel client, not at start-up

        return CellOutcome(self.events)

    def finish(self, finished: CellFinished) -> None:
        self.state = finished.status
        self.execution_count = finished.execution_count
        self.reason = finished.reason


class Worksheet:
    """What Ctrl+S saves: the resumed script's cells as read, then each cell run in the app."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script
        self.path: Path | None = script.path if script and script.format in _PERCENT else None
        self.cells: list[SessionCell] = []
        self._saved_typed = 0
        self._disk = _disk_state(self.path)
        self.restarted_at = 0  # index of the first cell after the last restart the app asked for

    def changed_on_disk(self, path: Path) -> bool:
        """Whether the file at `path` (the one loaded or last saved) changed since then."""
        return path == self.path and self._disk is not None and _disk_state(path) != self._disk

    def add(self, source: str, script_line: int | None = None, *, rerun: bool = False) -> SessionCell:
        cell = SessionCell(len(self.cells) + 1, source, script_line, rerun=rerun)
        self.cells.append(cell)
        return cell

    @property
    def typed_cells(self) -> list[SessionCell]:
        return [
            c for c in self.cells
            if not c.from_script and not c.rerun and c.state in FINAL_STATES and c.state != "cancelled"
        ]

    def runnable(self) -> list[tuple[str, int | None]]:
        """Every code cell of the document, in order, with its script line: what "run all" runs."""
        cells: list[tuple[str, int | None]] = []
        if self.script is not None:
            cells += [(c.source, c.line) for c in self.script.code_cells]
        cells += [(c.source, None) for c in self.typed_cells]
        return cells

    @property
    def unsaved(self) -> int:
        """How many executed typed cells the file does not have yet."""
        return len(self.typed_cells) - self._saved_typed

    @property
    def suggested_path(self) -> Path:
        if self.script is not None and self.script.path is not None:
            return self.script.path.with_suffix(".py") if self.path is None else self.path
        return Path("gradrepl-session.py")

    def document(self) -> tuple[Cell, ...]:
        """The cells to save; those that must not run again carry the skip marker."""
        from gradrepl.cells import marked_skipped, new_code_cell

        reasons = self.skip_reasons()
        kept: list[Cell] = []
        if self.script is not None:
            resumed = {c.script_line: c for c in reversed(self.cells) if c.from_script and not c.rerun}
            percent = self.script.format in _PERCENT
            for cell in self.script.cells if percent else self.script.code_cells:
                # A notebook or sphinx script is saved as percent cells of its code.
                saved = cell if percent else new_code_cell(cell.source)
                ran = resumed.get(cell.line) if cell.kind == "code" else None
                reason = reasons.get(ran.number) if ran is not None else None
                kept.append(marked_skipped(saved, reason) if reason else saved)
        for typed in self.typed_cells:
            reason = reasons.get(typed.number)
            cell = new_code_cell(typed.source)
            kept.append(marked_skipped(cell, reason) if reason else cell)
        return tuple(kept)

    def skip_reasons(self) -> dict[int, str]:
        """By cell number: why a cell of the document must not run when the file is resumed.

        A cell counts by its last run: a copy run again after a restart stands for it."""
        first = self.current_kernel_start()
        reasons: dict[int, str] = {}
        for index, cell in enumerate(self.cells):
            if cell.rerun:
                continue
            last = self._last_run(cell, index)
            reason = _failure_reason(last)
            if reason is None and self.cells.index(last) < first:
                reason = "before restart"
            if reason is not None:
                reasons[cell.number] = reason
        return reasons

    def current_kernel_start(self) -> int:
        """Index of the first cell the current kernel ran: after the last cell that killed a
        kernel, or where In [n] counted from 1 again (a restart)."""
        start = 0
        previous: int | None = None
        for index, cell in enumerate(self.cells):
            count = cell.execution_count
            if cell.state == "died":
                start, previous = index + 1, None
            elif count is not None:
                if previous is not None and count <= previous:
                    start = index
                previous = count
        return max(start, self.restarted_at)

    def _last_run(self, cell: SessionCell, index: int) -> SessionCell:
        copies = [
            c for c in self.cells[index + 1:]
            if c.rerun and (c.source, c.script_line) == (cell.source, cell.script_line) and c.state in FINAL_STATES
        ]
        return copies[-1] if copies else cell

    def save(self, path: Path) -> None:
        """Write atomically; OSError on failure (the caller shows it in one line)."""
        from gradrepl.cells import Script, write_percent

        preamble = self.script.preamble if self.script is not None and self.script.format in _PERCENT else ""
        write_percent(path, Script(path, "percent", self.document(), preamble))
        self.path = path
        self._saved_typed = len(self.typed_cells)
        self._disk = _disk_state(path)


def _disk_state(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _failure_reason(cell: SessionCell) -> str | None:
    if cell.state == "cancelled" and cell.reason.startswith(SKIPPED_ON_RESUME):
        return cell.reason[len(SKIPPED_ON_RESUME):]
    if cell.state == "timeout":
        return "timed out"
    if cell.state == "died":
        return "stopped by restart" if cell.reason == _STOPPED_BY_RESTART else "killed the kernel"
    error = cell.outcome.error if cell.state == "error" else None
    if error is not None and error.ename == "KeyboardInterrupt":
        return "interrupted"
    return None
