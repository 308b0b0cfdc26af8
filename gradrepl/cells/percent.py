"""The percent format (`# %%` cells, as jupytext writes it): read, and written back losslessly."""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from gradrepl.cells.model import (
    _KIND_LABEL,
    _KIND_LABELS,
    _MARKER,
    _METADATA_KEY,
    BOM,
    Cell,
    CellKind,
    Metadata,
    Script,
    _comment,
    _contains_code,
    _content,
    _escape_marker,
    _is_marker,
    _nonblank_span,
    _split_bom,
    _split_lines,
    _uncomment,
    _unescape_marker,
)


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
    ends = [*starts[1:], len(lines)]
    cells.extend(_marked_cell(lines[start:end], first_line=start + 1) for start, end in zip(starts, ends, strict=True))
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
    write_atomically(Path(os.path.realpath(path)), data)


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


def write_atomically(target: Path, data: bytes) -> None:
    """`data` in `target` by a rename over it, fsynced, keeping its mode; never over a non-regular file."""
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        # Renaming over a device, a FIFO or a socket would replace it with a plain file.
        raise OSError(errno.EINVAL, "not a regular file", str(target))
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


