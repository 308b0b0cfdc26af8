"""Cells and scripts, and the line-level helpers every format shares."""

from __future__ import annotations

import ast
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

CellKind = Literal["code", "markdown", "raw"]
ScriptFormat = Literal["percent", "sphinx", "nbconvert", "ipynb", "plain"]
Metadata = tuple[tuple[str, str], ...]

BOM = "\ufeff"
_CELL_KINDS: tuple[CellKind, ...] = ("code", "markdown", "raw")
_KIND_LABELS: dict[str, CellKind] = {"markdown": "markdown", "md": "markdown", "raw": "raw"}
_MARKER = re.compile(r"# ?%%(?=[ \t\[]|$)")
# A marker with any number of backslashes after the "#": the escape of a marker.
_MARKER_OR_ESCAPED = re.compile(r"#\\*(?= ?%%(?:[ \t\[]|$))")
_KIND_LABEL = re.compile(r"\[([^\]]*)\]")
_METADATA_KEY = re.compile(r"[A-Za-z_][\w.\-]*=")
_SPHINX_SEPARATOR = re.compile(r"#{20,}[ \t]*$")


class ScriptError(Exception):
    """A script cannot be read: str(err) is one clear line for the user, e.g.
    "gradrepl: cannot read 'x.py': not UTF-8 text (byte 0xff at offset 12)"."""

    def __init__(self, reason: str, path: str | os.PathLike[str] | None = None) -> None:
        self.reason = " ".join(reason.split())
        self.path = None if path is None else os.fspath(path)
        super().__init__(self.reason, self.path)

    def __str__(self) -> str:
        where = "script text" if self.path is None else f"'{self.path}'"
        return f"gradrepl: cannot read {where}: {self.reason}"


@dataclass(frozen=True)
class Cell:
    kind: CellKind
    source: str
    line: int = 0
    title: str = ""
    metadata: Metadata = ()
    raw: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _CELL_KINDS:
            raise ValueError(f"unknown cell kind {self.kind!r}; expected one of {_CELL_KINDS}")


@dataclass(frozen=True)
class Script:
    path: Path | None
    format: ScriptFormat
    cells: tuple[Cell, ...]
    preamble: str = ""

    @property
    def code_cells(self) -> tuple[Cell, ...]:
        return tuple(cell for cell in self.cells if cell.kind == "code")


def new_code_cell(source: str) -> Cell:
    """A code cell not read from a file; blank lines around the code are dropped."""
    lines = source.replace("\r\n", "\n").split("\n")
    first, end = _nonblank_span(lines)
    return Cell("code", "\n".join(lines[first:end]))


def edited(cell: Cell, **changes: Any) -> Cell:
    """`cell` with `changes` applied and its raw text dropped, so it is rendered fresh."""
    return replace(cell, raw=None, **changes)





def _split_bom(text: str) -> tuple[str, str]:
    if text.startswith(BOM):
        return BOM, text[len(BOM):]
    return "", text


def _split_lines(text: str) -> list[str]:
    """Lines with their endings; only "\\n" ends a line, so "".join(lines) == text."""
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _content(line: str) -> str:
    """A line without its "\\n" or "\\r\\n" ending."""
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith("\n"):
        return line[:-1]
    return line


def _nonblank_span(lines: list[str]) -> tuple[int, int]:
    """Start and end (exclusive) of `lines` without blank lines at either edge."""
    nonblank = [index for index, line in enumerate(lines) if line.strip()]
    if not nonblank:
        return 0, 0
    return nonblank[0], nonblank[-1] + 1


def _uncomment(line: str) -> str:
    if line == "#":
        return ""
    if line.startswith("# "):
        return line[2:]
    return line


def _comment(line: str) -> str:
    return "# " + line if line else "#"


def _is_marker(line: str) -> bool:
    return _MARKER.match(_content(line)) is not None


def _escape_marker(line: str) -> str:
    if _MARKER_OR_ESCAPED.match(line):
        return "#\\" + line[1:]
    return line


def _unescape_marker(line: str) -> str:
    match = _MARKER_OR_ESCAPED.match(line)
    if match and match.end() > 1:
        return "#" + line[2:]
    return line


def _contains_code(text: str) -> bool:
    """Whether `text` holds statements other than comments and a docstring."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            statements = ast.parse(text).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # nesting too deep: MemoryError
        return bool(text.strip())
    if statements and _is_docstring(statements[0]):
        statements = statements[1:]
    return bool(statements)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )

