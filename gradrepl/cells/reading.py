"""Reading a script file of any format: one clear ScriptError when it cannot be read."""

from __future__ import annotations

import errno
import os
from dataclasses import replace
from pathlib import Path

from gradrepl.cells.model import (
    Script,
    ScriptError,
)
from gradrepl.cells.notebook import parse_ipynb
from gradrepl.cells.percent import parse_percent
from gradrepl.cells.sphinx import _has_sphinx_separator, parse_sphinx


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


