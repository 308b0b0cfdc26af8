"""The code input's history: every submitted cell, kept across sessions in a JSON-lines file."""

from __future__ import annotations

import json
import os
from pathlib import Path

LIMIT = 1000


def state_dir() -> Path:
    """Where gradrepl keeps what outlives a session: $XDG_STATE_HOME/gradrepl."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "gradrepl"


def default_path() -> Path:
    if explicit := os.environ.get("GRADREPL_HISTORY"):
        return Path(explicit)
    return state_dir() / "history.jsonl"


class History:
    """Entries oldest first; `older`/`newer` walk them like a shell does, keeping the draft."""

    def __init__(self, path: Path | None = None, limit: int = LIMIT) -> None:
        self.path = path
        self.limit = limit
        self.entries: list[str] = self._load() if path else []
        self._position: int | None = None
        self._draft = ""
        self.error: str | None = None

    def _load(self) -> list[str]:
        assert self.path is not None
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []
        entries = []
        for line in lines[-self.limit :]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, str) and entry.strip():
                entries.append(entry)
        return entries

    def add(self, source: str) -> None:
        self.reset()
        if not source.strip() or (self.entries and self.entries[-1] == source):
            return
        self.entries.append(source)
        del self.entries[: -self.limit]
        if self.path is None:
            return
        try:
            # Private, as the journal is: cells can hold tokens and paths.
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(descriptor, "a", encoding="utf-8") as file:
                if os.fstat(file.fileno()).st_mode & 0o077:
                    os.fchmod(file.fileno(), 0o600)  # a history written by an older gradrepl
                file.write(json.dumps(source) + "\n")
        except OSError as err:
            self.error = f"history not saved: {err.strerror or err}"

    def reset(self) -> None:
        self._position = None
        self._draft = ""

    def older(self, current: str) -> str | None:
        if not self.entries:
            return None
        if self._position is None:
            self._draft = current
            self._position = len(self.entries)
        if self._position == 0:
            return None
        self._position -= 1
        return self.entries[self._position]

    def newer(self) -> str | None:
        if self._position is None:
            return None
        self._position += 1
        if self._position >= len(self.entries):
            draft = self._draft
            self.reset()
            return draft
        return self.entries[self._position]
