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
        from gradrepl.cells import new_code_cell
        kept: tuple[Cell, ...] = ()
        if self.script is not None and self.script.format in _PERCENT:
            kept = self.script.cells
        elif self.script is not None:
            # A notebook or sphinx script is saved as percent cells of its code.
            kept = tuple(new_code_cell(c.source) for c in self.script.code_cells)
        return (*kept, *(new_code_cell(c.source) for c in self.typed_cells))

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
