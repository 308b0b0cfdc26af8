r"""Reading and writing cell scripts losslessly.

A *cell script* is Python text split into cells. Readable formats:

* **percent** (as jupytext writes it): a cell starts at a marker line ``# %%``
  or ``#%%`` at column 0, optionally with a kind (``[markdown]``, ``[md]``,
  ``[raw]``), a title and ``key=value`` metadata whose values are JSON, e.g.
  ``# %% Training loop tags=["slow"]``. Markdown and raw cells are commented
  lines: ``# text`` reads as ``text`` and a bare ``#`` as an empty line.
* **plain**: Python text without markers is one code cell.
* **sphinx** (sphinx-gallery examples, read only): the module docstring is a
  markdown cell; a line of 20 or more ``#`` starts a block whose comment lines
  form a markdown cell, followed by a code cell.
* **ipynb** (read only), through nbformat.

Percent text round-trips byte for byte: each parsed cell keeps the exact text
of its block (marker line and trailing blank lines included) in ``Cell.raw``,
and ``render_percent`` writes that text back whenever it still reads as the
cell's kind, source, title and metadata. Cells without a usable ``raw`` (new
cells, or cells changed with ``edited``) are rendered fresh and separated from
their neighbours by one blank line. A UTF-8 byte order mark is kept in
``Script.preamble`` so writing back is byte-identical.

Line numbers
    ``Cell.line`` is the 1-based file line of the first line of ``Cell.source``.
    Blank lines at the start and end of a percent, plain or sphinx cell are not
    part of its source, so ``line`` is the first non-blank line after the
    marker; an empty cell gets the line right after its marker. Notebook cells
    have no file lines: their lines count from 1 within each cell, so ``line``
    is 1.

Text before the first marker
    Comments, blank lines and a module docstring before the first marker are
    ``Script.preamble``. If that text holds other code (imports, say), it is a
    code cell without a marker instead, so the code is not silently skipped.

A marker line inside a cell
    ``# %%`` at column 0 always starts a cell. When a cell is rendered fresh,
    a source line that would read as a marker gets a backslash after its
    ``#`` (``#\ %% not a cell``), and reading removes one such backslash, so
    the source reads back unchanged (``#\ %%`` itself is written ``#\\ %%``).

Percent limits
    A code cell's leading and trailing blank lines are not kept
    (``new_code_cell`` strips them). A title or metadata that cannot be read
    back from a marker line makes ``render_percent`` raise ``ValueError``.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import re
import secrets
import stat
import textwrap
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

CellKind = Literal["code", "markdown", "raw"]
ScriptFormat = Literal["percent", "sphinx", "ipynb", "plain"]
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


# ---------------------------------------------------------------- reading files


def read_script(path: str | os.PathLike[str]) -> Script:
    """Read a percent, sphinx-gallery, plain Python or .ipynb script."""
    location = Path(path)
    text = _decode(_read_bytes(location), location)
    try:
        if location.suffix.lower() == ".ipynb":
            script = parse_ipynb(text)
        else:
            script = _parse_python_text(text)
    except ScriptError as err:
        raise ScriptError(err.reason, location) from err.__cause__
    return replace(script, path=location)


def _read_bytes(path: Path) -> bytes:
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        return path.read_bytes()
    except OSError as err:
        raise ScriptError(describe_os_error(err), path) from err


def describe_os_error(err: OSError) -> str:
    """The reason part of a ScriptError for a file that cannot be opened."""
    if isinstance(err, FileNotFoundError):
        return "no such file"
    if isinstance(err, IsADirectoryError):
        return "is a directory"
    if isinstance(err, PermissionError):
        return "permission denied"
    return (err.strerror or str(err)).lower()


def _decode(data: bytes, path: Path) -> str:
    if b"\x00" in data:
        raise ScriptError("binary file, not a script", path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        reason = f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        raise ScriptError(reason, path) from err


def _parse_python_text(text: str) -> Script:
    script = parse_percent(text)
    if script.format == "plain" and _has_sphinx_separator(text):
        return parse_sphinx(text)
    return script


# ---------------------------------------------------------------- lines


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
    except (SyntaxError, ValueError):
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


# ---------------------------------------------------------------- percent format


def parse_percent(text: str) -> Script:
    """Cells of percent text (format "plain" when it has no marker line)."""
    bom, body = _split_bom(text)
    lines = _split_lines(body)
    starts = [index for index, line in enumerate(lines) if _is_marker(line)]
    if not starts:
        return _plain_script(bom, lines)
    head = lines[: starts[0]]
    cells: list[Cell] = []
    preamble = bom + "".join(head)
    if _contains_code("".join(head)):
        preamble = bom
        cells.append(_markerless_cell(head, first_line=1))
    ends = starts[1:] + [len(lines)]
    cells.extend(_marked_cell(lines[start:end], first_line=start + 1) for start, end in zip(starts, ends))
    return Script(None, "percent", tuple(cells), preamble)


def _plain_script(bom: str, lines: list[str]) -> Script:
    text = "".join(lines)
    if not text.strip():
        return Script(None, "plain", (), bom + text)
    return Script(None, "plain", (_markerless_cell(lines, first_line=1),), bom)


def _markerless_cell(lines: list[str], first_line: int) -> Cell:
    contents = [_content(line) for line in lines]
    first, end = _nonblank_span(contents)
    source = "\n".join(_unescape_marker(line) for line in contents[first:end])
    return Cell("code", source, first_line + first, raw="".join(lines))


def _marked_cell(lines: list[str], first_line: int) -> Cell:
    kind, title, metadata = _parse_marker(_content(lines[0]))
    body = [_content(line) for line in lines[1:]]
    first, end = _nonblank_span(body)
    source_lines = [_unescape_marker(line) for line in body[first:end]]
    if kind != "code":
        source_lines = [_uncomment(line) for line in source_lines]
    return Cell(kind, "\n".join(source_lines), first_line + 1 + first, title, metadata, "".join(lines))


def _parse_marker(line: str) -> tuple[CellKind, str, Metadata]:
    marker = _MARKER.match(line)
    assert marker is not None, line
    rest = line[marker.end():].strip()
    kind: CellKind = "code"
    label = _KIND_LABEL.match(rest)
    if label and label.group(1) in _KIND_LABELS:
        kind = _KIND_LABELS[label.group(1)]
        rest = rest[label.end():].strip()
    title, metadata = _split_title_metadata(rest)
    return kind, title, metadata


def _split_title_metadata(text: str) -> tuple[str, Metadata]:
    """Split "Title key=value ..." where each value is JSON; the longest metadata tail wins."""
    for start in _metadata_starts(text):
        metadata = _parse_metadata(text, start)
        if metadata is not None:
            return text[:start].rstrip(), metadata
    return text, ()


def _metadata_starts(text: str) -> Iterable[int]:
    for match in _METADATA_KEY.finditer(text):
        start = match.start()
        if start == 0 or text[start - 1].isspace():
            yield start


def _parse_metadata(text: str, position: int) -> Metadata | None:
    """`key=value` pairs from `position` to the end of `text`, or None if something else is there.

    String values are decoded; other JSON values are kept as written."""
    decoder = json.JSONDecoder()
    pairs: list[tuple[str, str]] = []
    while position < len(text):
        key = _METADATA_KEY.match(text, position)
        if key is None:
            return None
        try:
            value, value_end = decoder.raw_decode(text, key.end())
        except ValueError:
            return None
        if value_end < len(text) and not text[value_end].isspace():
            return None
        pairs.append((key.group()[:-1], value if isinstance(value, str) else text[key.end():value_end]))
        position = value_end
        while position < len(text) and text[position].isspace():
            position += 1
    return tuple(pairs)


def _metadata_value_text(value: str) -> str:
    """`value` as written after "key=": bare when it is a one-line non-string JSON value."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(decoded, str) or value != value.strip() or "\n" in value or "\r" in value:
        return json.dumps(value, ensure_ascii=False)
    return value


def render_percent(script_or_cells: Script | Iterable[Cell]) -> str:
    """Percent text for a script or cells: unchanged cells give back their raw text."""
    preamble, cells = _preamble_and_cells(script_or_cells)
    newline = _newline_style(preamble, cells)
    text = preamble
    previous_fresh = False
    for index, cell in enumerate(cells):
        raw = _reusable_raw(cell, index, cells, preamble)
        fresh = raw is None
        if index > 0 or text not in ("", BOM):
            text = _end_line(text, newline)
        if index > 0 and (fresh or previous_fresh):
            text = _end_with_blank_line(text, newline)
        text += _render_fresh(cell, newline) if raw is None else raw
        previous_fresh = fresh
    return text


def write_percent(path: str | os.PathLike[str], script_or_cells: Script | Iterable[Cell]) -> None:
    """Write percent text atomically: a temporary file in the same directory replaces `path`."""
    data = render_percent(script_or_cells).encode("utf-8")
    _write_atomically(Path(os.path.realpath(path)), data)


def _preamble_and_cells(script_or_cells: Script | Iterable[Cell]) -> tuple[str, tuple[Cell, ...]]:
    if isinstance(script_or_cells, Script):
        return script_or_cells.preamble, script_or_cells.cells
    return "", tuple(script_or_cells)


def _newline_style(preamble: str, cells: tuple[Cell, ...]) -> str:
    texts = [preamble, *(cell.raw for cell in cells if cell.raw)]
    return "\r\n" if any("\r\n" in text for text in texts) else "\n"


def _end_line(text: str, newline: str) -> str:
    return text if text.endswith("\n") else text + newline


def _end_with_blank_line(text: str, newline: str) -> str:
    lines = text.split("\n")
    if len(lines) >= 2 and not lines[-2].strip():
        return text
    return text + newline


def _same_content(first: Cell, second: Cell) -> bool:
    return (first.kind, first.source, first.title, tuple(first.metadata)) == (
        second.kind,
        second.source,
        second.title,
        tuple(second.metadata),
    )


def _reusable_raw(cell: Cell, index: int, cells: tuple[Cell, ...], preamble: str) -> str | None:
    """`cell.raw` if writing it at `index` reads back as this cell, else None."""
    if not cell.raw:
        return None
    lines = _split_lines(cell.raw)
    if any(_is_marker(line) for line in lines[1:]):
        return None
    if _is_marker(lines[0]):
        reread = _marked_cell(lines, first_line=1)
    elif _markerless_raw_fits(cell.raw, index, cells, preamble):
        reread = _markerless_cell(lines, first_line=1)
    else:
        return None
    return cell.raw if _same_content(reread, cell) else None


def _markerless_raw_fits(raw: str, index: int, cells: tuple[Cell, ...], preamble: str) -> bool:
    """Whether text without a marker would read back as a cell at `index`."""
    if index != 0 or preamble not in ("", BOM) or not raw.strip():
        return False
    return len(cells) == 1 or _contains_code(raw)


def _render_fresh(cell: Cell, newline: str) -> str:
    lines = [_marker_line(cell)]
    if cell.source:
        body = cell.source.split("\n")
        if cell.kind != "code":
            body = [_comment(line) for line in body]
        lines.extend(_escape_marker(line) for line in body)
    return newline.join(lines) + newline


def _marker_line(cell: Cell) -> str:
    parts = ["# %%"]
    if cell.kind != "code":
        parts.append(f"[{cell.kind}]")
    if cell.title:
        parts.append(cell.title)
    parts.extend(f"{key}={_metadata_value_text(value)}" for key, value in cell.metadata)
    line = " ".join(parts)
    if "\n" in line or "\r" in line or _parse_marker(line) != (cell.kind, cell.title, tuple(cell.metadata)):
        raise ValueError(f"title or metadata would not read back from the marker line {line!r}")
    return line


def _write_atomically(target: Path, data: bytes) -> None:
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    descriptor = os.open(temporary, flags, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        _copy_mode(target, temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _copy_mode(source: Path, destination: Path) -> None:
    try:
        mode = stat.S_IMODE(source.stat().st_mode)
    except FileNotFoundError:
        return
    os.chmod(destination, mode)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable where the platform allows opening a directory."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------- sphinx-gallery


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
    except (SyntaxError, ValueError):
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


# ---------------------------------------------------------------- notebooks


def parse_ipynb(text: str) -> Script:
    """Cells of a notebook; each cell's lines count from 1 (Cell.line == 1), metadata is JSON-encoded."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        raise ScriptError(f"not a valid notebook ({err.msg}: line {err.lineno} column {err.colno})") from err
    import nbformat

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(text, as_version=4)
        cells = tuple(_notebook_cell(cell) for cell in notebook.cells)
    except Exception as err:  # nbformat signals a malformed notebook with many exception types
        raise ScriptError(f"not a valid notebook ({_first_line(str(err)) or type(err).__name__})") from err
    return Script(None, "ipynb", cells)


def _notebook_cell(cell: Any) -> Cell:
    kind: CellKind = cell.cell_type if cell.cell_type in _CELL_KINDS else "raw"
    return Cell(kind, cell.source, line=1, metadata=_notebook_metadata(cell.get("metadata", {})))


def _notebook_metadata(metadata: dict[str, Any]) -> Metadata:
    """Metadata as percent marker pairs; keys that cannot be written on a marker line are left out."""
    return tuple(
        (key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in metadata.items()
        if _METADATA_KEY.fullmatch(f"{key}=")
    )


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]
