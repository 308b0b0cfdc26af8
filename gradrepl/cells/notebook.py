"""Jupyter notebooks (.ipynb, read only), through nbformat."""

from __future__ import annotations

import json
import warnings
from typing import Any

from gradrepl.cells.model import (
    _CELL_KINDS,
    _METADATA_KEY,
    Cell,
    CellKind,
    Metadata,
    Script,
    ScriptError,
)


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

