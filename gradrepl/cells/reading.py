"""Reading a script file of any format: one clear ScriptError when it cannot be read."""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import replace
from pathlib import Path

from gradrepl.cells.exported import has_in_markers, parse_exported
from gradrepl.cells.model import (
    Script,
    ScriptError,
)
from gradrepl.cells.notebook import parse_ipynb
from gradrepl.cells.percent import parse_percent
from gradrepl.cells.sphinx import _has_sphinx_separator, parse_sphinx


def read_script(path: str | os.PathLike[str]) -> Script:
    """Read a percent, sphinx-gallery, nbconvert-exported, plain Python or .ipynb script."""
    location = Path(path)
    if location.suffix.lower() in NOT_SCRIPTS:
        raise ScriptError(f"not a script or notebook (a {location.suffix} file; "
                          "gradrepl runs Python scripts and .ipynb notebooks)", location)
    text = _decode(_read_bytes(location), location)
    try:
        if location.suffix.lower() == ".ipynb":
            script = parse_ipynb(text)
        else:
            script = _parse_python_text(text)
    except ScriptError as err:
        raise ScriptError(err.reason, location) from err.__cause__
    return replace(script, path=location)


# Parsing costs about half a second and 30 MB of memory per MB of script text, so a
# bound keeps opening a file within seconds. 4 MB is several times the biggest hand-written
# Python module; notebooks carry their outputs (images) and their JSON parses quickly.
SCRIPT_LIMIT = 4 << 20
NOTEBOOK_LIMIT = 64 << 20

_KINDS = ((stat.S_ISDIR, "is a directory"), (stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file"),
          (stat.S_ISCHR, "is a character device, not a regular file"),
          (stat.S_ISBLK, "is a block device, not a regular file"), (stat.S_ISSOCK, "is a socket, not a regular file"))


# Documents and data that sit beside scripts: run as Python they would only fail. Any other
# name (no suffix, .py, .ipy, .pyw, ...) is read as a Python script.
NOT_SCRIPTS = frozenset({
    ".md", ".markdown", ".rst", ".txt", ".tex", ".html", ".htm", ".xml",
    ".json", ".jsonl", ".csv", ".tsv", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".log",
})

# Byte order marks of the wide encodings (UTF-32 first: its little-endian mark begins with UTF-16's).
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
              (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def size_limit(path: Path) -> int:
    """The largest file `read_script` reads at `path`, in bytes."""
    return NOTEBOOK_LIMIT if path.suffix.lower() == ".ipynb" else SCRIPT_LIMIT


def _read_bytes(path: Path) -> bytes:
    """A regular file's bytes (symlinks followed), at most `size_limit`; a FIFO or a device
    is refused without reading from it (O_NONBLOCK: opening a FIFO never waits for a writer)."""
    limit = size_limit(path)
    try:
        fd = _open(path)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ScriptError(_kind(info.st_mode), path)
            if info.st_size > limit:
                raise ScriptError(_too_big(info.st_size, limit), path)
            os.set_blocking(fd, True)
            chunks, total = [], 0
            while total <= limit:  # the file may grow while it is read
                chunk = os.read(fd, min(1 << 20, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            if total > limit:
                raise ScriptError(_too_big(total, limit, growing=True), path)
            return b"".join(chunks)
        finally:
            os.close(fd)
    except OSError as err:
        raise ScriptError(describe_os_error(err), path) from err


def _open(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))


def _kind(mode: int) -> str:
    return next((reason for test, reason in _KINDS if test(mode)), "not a regular file")


def _too_big(size: int, limit: int, growing: bool = False) -> str:
    what = "more than " if growing else ""
    return f"too big ({what}{_megabytes(size)}): gradrepl reads scripts up to {_megabytes(limit)}"


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB" if size < (10 << 20) else f"{size >> 20} MB"


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
    wide = next((name for bom, name in _WIDE_BOMS if data.startswith(bom)), None)
    if wide is not None:
        reason = f"{wide} text, not UTF-8 (gradrepl reads UTF-8 scripts: convert it, e.g. iconv -f {wide} -t UTF-8)"
        raise ScriptError(reason, path)
    if b"\x00" in data:
        raise ScriptError("binary file, not a script", path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        reason = f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        raise ScriptError(reason, path) from err


def _parse_python_text(text: str) -> Script:
    script = parse_percent(text)
    if script.format != "plain":
        return script
    if has_in_markers(text):
        return parse_exported(text)
    if _has_sphinx_separator(text):
        return parse_sphinx(text)
    return script


