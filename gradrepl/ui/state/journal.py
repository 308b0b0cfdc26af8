"""The session journal: each typed cell is written to disk as it starts running, so an app
that is killed (SIGKILL, a closed laptop, a crash) loses at most the cell being typed. A
clean quit removes the journal; one left behind by a process that is gone is offered back
at the next start for the same script (or the next fresh session).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradrepl.ui.state.history import state_dir

FORMAT = 1


def default_dir() -> Path:
    if explicit := os.environ.get("GRADREPL_JOURNAL_DIR"):
        return Path(explicit)
    return state_dir() / "journal"


def _script_key(script: Path | None) -> str | None:
    return str(script.resolve()) if script is not None else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not ours to recover
        return True
    return True


@dataclass(frozen=True)
class LeftOver:
    """A journal whose app is gone, with the typed cells it ran after its last save."""

    path: Path
    script: str | None
    started: float
    cells: tuple[str, ...]

    def discard(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


class Journal:
    """Appends one JSON line per event and fsyncs it; every failure becomes `error`."""

    def __init__(self, folder: Path | None, script: Path | None = None) -> None:
        self.folder = folder
        self.script = _script_key(script)
        self.path: Path | None = None
        self.error: str | None = None

    def _open(self) -> None:
        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.folder / f"{os.getpid()}-{int(time.time() * 1000)}.jsonl"
        self._append({"journal": FORMAT, "pid": os.getpid(), "script": self.script, "started": time.time()})

    def _append(self, record: dict[str, Any]) -> None:
        assert self.path is not None
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, (json.dumps(record, ensure_ascii=False) + "\n").encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _write(self, record: dict[str, Any]) -> None:
        if self.folder is None:
            return
        try:
            if self.path is None:
                self._open()
            self._append(record)
        except OSError as err:
            self.error = f"journal not written ({err.strerror or err}): unsaved cells are not protected"
            self.folder = None

    def cell_started(self, source: str) -> None:
        self._write({"cell": source})

    def saved(self, typed_cells: int, script: Path | None = None) -> None:
        """The document on disk (`script`, when saved to a file of its own) now has the first
        `typed_cells` cells journaled. From then on the journal is that file's: a restart of
        `gradrepl SCRIPT` runs those cells from the file and offers the rest."""
        if script is not None:
            self.script = _script_key(script)
        if self.path is not None:
            self._write({"saved": typed_cells, "script": self.script})

    def close(self) -> None:
        """A clean end: nothing to offer back."""
        if self.path is not None:
            try:
                self.path.unlink()
            except OSError:
                pass
            self.path = None

    def left_over(self) -> LeftOver | None:
        """The newest of `left_overs()`, or None."""
        found = self.left_overs()
        return found[0] if found else None

    def left_overs(self) -> list[LeftOver]:
        """The journals for this script whose app is gone and that hold unsaved cells, newest
        first; journals with nothing unsaved are removed on the way."""
        if self.folder is None or not self.folder.is_dir():
            return []
        found: list[LeftOver] = []
        for path in self.folder.glob("*.jsonl"):
            if path == self.path:
                continue
            left = _read(path)
            if left is None:
                continue
            pid, leftover = left
            if _alive(pid) or leftover.script != self.script:
                continue
            if not leftover.cells:
                leftover.discard()
                continue
            found.append(leftover)
        return sorted(found, key=lambda item: item.started, reverse=True)


def _read(path: Path) -> tuple[int, LeftOver] | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:  # a line cut short by the kill
            continue
    if not records or not isinstance(records[0], dict) or records[0].get("journal") != FORMAT:
        return None
    header = records[0]
    cells: list[str] = []
    saved = 0
    script = header.get("script")
    for record in records[1:]:
        if not isinstance(record, dict):
            continue
        if isinstance(record.get("saved"), int):
            saved = record["saved"]
            script = record.get("script", script)
        elif isinstance(record.get("cell"), str):
            cells.append(record["cell"])
    unsaved = tuple(cells[saved:])
    return int(header.get("pid") or 0), LeftOver(path, script, float(header.get("started") or 0), unsaved)
