"""Notebooks exported as Python by Jupyter ("Download as Python", `jupyter nbconvert --to
python`), read only.

A line `# In[3]:` or `# In[ ]:` at column 0 starts a code cell (only in a file without `# %%`
markers). nbconvert writes two blank lines after each marker and after each code cell, and a
markdown cell as comment lines followed by one blank line, so a run of comment paragraphs
that ends a block and follows its code after two or more blank lines (four when the cell has
no code) is read as markdown cells, one per paragraph. The shebang and coding lines nbconvert
writes first are not a cell.
"""

from __future__ import annotations

import re

from gradrepl.cells.model import (
    Cell,
    Script,
    _content,
    _nonblank_span,
    _split_bom,
    _split_lines,
    _uncomment,
)

_IN_MARKER = re.compile(r"# In\[ *\d* *\]:[ \t]*$")
_CODING = re.compile(r"#.*coding[:=]")  # PEP 263, on the first or second line
_PROSE_GAP, _PROSE_GAP_NO_CODE = 2, 4


def has_in_markers(text: str) -> bool:
    return any(_IN_MARKER.match(_content(line)) for line in _split_lines(text))


def parse_exported(text: str) -> Script:
    """Cells of an exported notebook (read only: cells have no raw text)."""
    contents = [_content(line) for line in _split_lines(_split_bom(text)[1])]
    starts = [index for index, line in enumerate(contents) if _IN_MARKER.match(line)]
    cells = _head_cells(contents[: starts[0]]) if starts else []
    for start, end in zip(starts, [*starts[1:], len(contents)], strict=True):
        cells.extend(_block_cells(contents[start + 1:end], first_line=start + 2))
    return Script(None, "nbconvert", tuple(cells))


def _head_cells(lines: list[str]) -> list[Cell]:
    """Text before the first marker: nbconvert's header, then prose, or code the user added."""
    header = 0
    while header < min(2, len(lines)) and _is_header(lines[header], header):
        header += 1
    rest = lines[header:]
    if all(line.startswith("#") or not line.strip() for line in rest):
        return _prose_cells(rest, first_line=header + 1)
    return _code_cells(rest, first_line=header + 1, keep_empty=False)


def _is_header(line: str, index: int) -> bool:
    return (index == 0 and line.startswith("#!")) or _CODING.match(line) is not None


def _block_cells(lines: list[str], first_line: int) -> list[Cell]:
    """The code cell after a marker (`lines` are those up to the next one), then any prose."""
    first, end = _nonblank_span(lines)
    if first == end:
        return [Cell("code", "", first_line)]
    code_end = end
    while code_end > 0 and (not lines[code_end - 1].strip() or lines[code_end - 1].startswith("#")):
        code_end -= 1
    prose_start = next(index for index in range(code_end, end) if lines[index].strip()) if code_end < end else end
    gap = prose_start - code_end
    if code_end == end or gap < (_PROSE_GAP if code_end else _PROSE_GAP_NO_CODE):
        return _code_cells(lines, first_line, keep_empty=True)
    return [*_code_cells(lines[:code_end], first_line, keep_empty=True),
            *_prose_cells(lines[prose_start:end], first_line + prose_start)]


def _code_cells(lines: list[str], first_line: int, *, keep_empty: bool) -> list[Cell]:
    first, end = _nonblank_span(lines)
    if first == end:
        return [Cell("code", "", first_line)] if keep_empty else []
    return [Cell("code", "\n".join(lines[first:end]), first_line + first)]


def _prose_cells(lines: list[str], first_line: int) -> list[Cell]:
    """One markdown cell per paragraph of comment lines (a blank line ends a cell)."""
    cells: list[Cell] = []
    paragraph: list[str] = []
    for index, line in enumerate([*lines, ""]):
        if line.strip():
            paragraph.append(line)
            continue
        if paragraph:
            start = index - len(paragraph)
            cells.append(Cell("markdown", "\n".join(_uncomment(text) for text in paragraph), first_line + start))
        paragraph = []
    return cells
