"""Sphinx-gallery scripts (read only): a docstring, then blocks after lines of 20 or more `#`."""

from __future__ import annotations

import ast
import textwrap
import warnings

from gradrepl.cells.model import (
    _SPHINX_SEPARATOR,
    Cell,
    Script,
    _content,
    _is_docstring,
    _nonblank_span,
    _split_bom,
    _split_lines,
    _uncomment,
)


def parse_sphinx(text: str) -> Script:
    """Cells of a sphinx-gallery example (read only: cells have no raw text)."""
    body = _split_bom(text)[1]
    contents = [_content(line) for line in _split_lines(body)]
    cells: list[Cell] = []
    code_start = 0
    docstring = _module_docstring(body)
    if docstring is not None:
        docstring_cell, code_start = docstring
        if docstring_cell.source:
            cells.append(docstring_cell)
    cells.extend(_sphinx_blocks(contents, code_start))
    return Script(None, "sphinx", tuple(cells))


def _has_sphinx_separator(text: str) -> bool:
    return any(_SPHINX_SEPARATOR.match(_content(line)) for line in _split_lines(text))


def _module_docstring(text: str) -> tuple[Cell, int] | None:
    """The docstring as a markdown cell, and the number of file lines up to its end."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            statements = ast.parse(text).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # nesting too deep: MemoryError
        return None
    if not statements or not _is_docstring(statements[0]):
        return None
    node = statements[0]
    assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    lines = str(node.value.value).split("\n")
    first, end = _nonblank_span(lines)
    source = textwrap.dedent("\n".join(lines[first:end]))
    return Cell("markdown", source, node.lineno + first), node.end_lineno or node.lineno


def _sphinx_blocks(contents: list[str], start: int) -> list[Cell]:
    cells: list[Cell] = []
    code_start = index = start
    while index < len(contents):
        if not _SPHINX_SEPARATOR.match(contents[index]):
            index += 1
            continue
        cells.extend(_sphinx_code_cell(contents, code_start, index))
        text_end = index + 1
        while text_end < len(contents) and _is_sphinx_text_line(contents[text_end]):
            text_end += 1
        cells.extend(_sphinx_text_cell(contents, index + 1, text_end))
        code_start = index = text_end
    cells.extend(_sphinx_code_cell(contents, code_start, len(contents)))
    return cells


def _is_sphinx_text_line(line: str) -> bool:
    return line.startswith("#") and not _SPHINX_SEPARATOR.match(line)


def _sphinx_code_cell(contents: list[str], start: int, end: int) -> list[Cell]:
    lines = contents[start:end]
    first, last = _nonblank_span(lines)
    if first == last:
        return []
    return [Cell("code", "\n".join(lines[first:last]), start + first + 1)]


def _sphinx_text_cell(contents: list[str], start: int, end: int) -> list[Cell]:
    lines = [_uncomment(line) for line in contents[start:end]]
    first, last = _nonblank_span(lines)
    if first == last:
        return []
    return [Cell("markdown", "\n".join(lines[first:last]), start + first + 1)]


