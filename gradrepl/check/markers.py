"""What a cell asks of its check, the way nbval reads it: a comment marker on a line of its own
(`# NBVAL_IGNORE_OUTPUT`) or a tag in the cell's metadata (`nbval-ignore-output`), so a
repository that runs `pytest --nbval` keeps its markers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gradrepl.cells import Cell
from gradrepl.cells.skips import tags_of

Directive = Literal["ignore", "check", "raises", "skip"]

_MARKERS: dict[str, Directive] = {
    "NBVAL_IGNORE_OUTPUT": "ignore", "NBVAL_CHECK_OUTPUT": "check",
    "NBVAL_RAISES_EXCEPTION": "raises", "NBVAL_SKIP": "skip",
}
_TAGS: dict[str, Directive] = {
    "nbval-ignore-output": "ignore", "nbval-check-output": "check", "nbval-raises-exception": "raises",
    "raises-exception": "raises", "nbval-skip": "skip", "skip-execution": "skip",
}
_MARKER_LINE = re.compile(r"^\s*#\s*(NBVAL_[A-Z_]+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class CellDirectives:
    ignore: bool = False  # run it, compare nothing
    check: bool = False  # compare it even under --lax
    raises: bool = False  # an error is expected (its ename and evalue are still compared)
    skip: bool = False  # do not run it

    def compared(self, lax: bool) -> bool:
        return not self.ignore and not self.skip and (self.check or not lax)


def directives(cell: Cell) -> CellDirectives:
    found: set[Directive] = {_MARKERS[name] for name in _MARKER_LINE.findall(cell.source) if name in _MARKERS}
    found |= {_TAGS[tag] for tag in tags_of(dict(cell.metadata).get("tags")) if tag in _TAGS}
    return CellDirectives("ignore" in found, "check" in found, "raises" in found, "skip" in found)
