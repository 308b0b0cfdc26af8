"""Jupyter notebooks (.ipynb, read only), through nbformat.

nbformat reads a notebook whose cells or outputs have the wrong shape into exceptions of
many kinds (or into cells whose source is a number), so the fields gradrepl and nbformat's
reader rely on are checked first, and a problem is named by its place: `cell 3: "source"
is a number, not text or a list of lines`. Cells are counted from 1 over the whole notebook.
"""

from __future__ import annotations

import json
import sys
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

_VERSIONS = (1, 2, 3, 4)


def parse_ipynb(text: str) -> Script:
    """Cells of a notebook; each cell's lines count from 1 (Cell.line == 1), metadata is JSON-encoded."""
    problem = _shape_problem(_load_json(text))
    if problem is not None:
        raise ScriptError(f"not a valid notebook ({problem})")
    import nbformat

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(text, as_version=4)
        cells = tuple(_notebook_cell(number, cell) for number, cell in enumerate(notebook.cells, start=1))
    except ScriptError:
        raise
    except Exception as err:  # nbformat signals a malformed notebook with many exception types
        raise ScriptError(f"not a valid notebook ({_first_line(str(err)) or type(err).__name__})") from err
    return Script(None, "ipynb", cells)


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ScriptError(f"not a valid notebook ({err.msg}: line {err.lineno} column {err.colno})") from err
    except RecursionError as err:
        raise ScriptError("not a valid notebook (nested too deeply)") from err
    except ValueError as err:  # an integer longer than Python converts
        limit = sys.get_int_max_str_digits()
        reason = f"a number with more than {limit} digits" if "integer string conversion" in str(err) else _first_line(str(err))
        raise ScriptError(f"not a valid notebook ({reason})") from err


def _shape_problem(data: Any) -> str | None:
    """What is wrong with the notebook's structure, or None (versions 1 and 2 are left to nbformat)."""
    if not isinstance(data, dict):
        return f"the top level is {_what(data)}, not an object"
    if "nbformat" not in data:
        return 'no "nbformat" version number'
    version = data["nbformat"]
    if not isinstance(version, int) or isinstance(version, bool):
        return f'"nbformat" is {_what(version)}, not a version number'
    if version not in _VERSIONS:
        return f"nbformat version {version}: gradrepl reads versions 1 to 4"
    if version < 3:
        return None
    problem = _object_field(data, "metadata", required=True)
    if problem is not None:
        return problem
    cells = _cells(data) if version == 4 else _worksheet_cells(data)
    if isinstance(cells, str):
        return cells
    for number, cell in enumerate(cells, start=1):
        problem = _cell_problem(cell, version)
        if problem is not None:
            return f"cell {number}{problem}"
    return None


def _cells(data: dict[str, Any]) -> list[Any] | str:
    if "cells" not in data:
        return 'no "cells" list'
    cells = data["cells"]
    return cells if isinstance(cells, list) else f'"cells" is {_what(cells)}, not a list'


def _worksheet_cells(data: dict[str, Any]) -> list[Any] | str:
    """Version 3 keeps its cells in worksheets; they are counted as one list."""
    worksheets = data.get("worksheets")
    if not isinstance(worksheets, list):
        return 'no "worksheets" list' if worksheets is None else f'"worksheets" is {_what(worksheets)}, not a list'
    cells: list[Any] = []
    for number, sheet in enumerate(worksheets, start=1):
        if not isinstance(sheet, dict):
            return f"worksheet {number} is {_what(sheet)}, not an object"
        sheet_cells = sheet.get("cells", [])
        if not isinstance(sheet_cells, list):
            return f'worksheet {number}: "cells" is {_what(sheet_cells)}, not a list'
        cells.extend(sheet_cells)
    return cells


def _cell_problem(cell: Any, version: int) -> str | None:
    """What is wrong with one cell, worded to follow "cell N"."""
    if not isinstance(cell, dict):
        return f" is {_what(cell)}, not an object"
    if "cell_type" not in cell:
        return ' has no "cell_type"'
    kind = cell["cell_type"]
    if not isinstance(kind, str):
        return f': "cell_type" is {_what(kind)}, not text'
    source_key = "input" if version == 3 and kind == "code" else "source"
    if source_key not in cell and version == 4:
        return f' has no "{source_key}"'
    problem = _lines_field(cell, source_key)
    if problem is None:
        problem = _object_field(cell, "metadata", required=version == 4)
    if problem is None:
        problem = _object_field(cell, "attachments")
    if problem is None:
        problem = _attachments_problem(cell.get("attachments", {}))
    if problem is None and kind == "code":
        problem = _outputs_problem(cell)
    return None if problem is None else f": {problem}"


def _attachments_problem(attachments: dict[str, Any]) -> str | None:
    for name, bundle in attachments.items():
        if not isinstance(bundle, dict):
            return f"attachment {name!r} is {_what(bundle)}, not an object"
    return None


def _outputs_problem(cell: dict[str, Any]) -> str | None:
    outputs = cell.get("outputs", [])
    if not isinstance(outputs, list):
        return f'"outputs" is {_what(outputs)}, not a list'
    for number, output in enumerate(outputs, start=1):
        if not isinstance(output, dict):
            return f"output {number} is {_what(output)}, not an object"
        problem = _lines_field(output, "text") or _object_field(output, "data") or _object_field(output, "metadata")
        if problem is not None:
            return f"output {number}: {problem}"
    return None


def _lines_field(record: dict[str, Any], key: str) -> str | None:
    """A problem unless `record[key]` is absent, text, or a list of text (as nbformat writes lines)."""
    if key not in record or isinstance(record[key], str):
        return None
    value = record[key]
    if isinstance(value, list):
        odd = next((item for item in value if not isinstance(item, str)), "")
        return None if isinstance(odd, str) else f'"{key}" holds {_what(odd)}, not only lines of text'
    return f'"{key}" is {_what(value)}, not text or a list of lines'


def _object_field(record: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    if key not in record:
        return f'no "{key}"' if required else None
    value = record[key]
    return None if isinstance(value, dict) else f'"{key}" is {_what(value)}, not an object'


def _what(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"


def _notebook_cell(number: int, cell: Any) -> Cell:
    source = cell.get("source")
    if not isinstance(source, str):  # a version 1 or 2 notebook, upgraded by nbformat
        raise ScriptError(f'not a valid notebook (cell {number}: "source" is {_what(source)}, not text)')
    kind: CellKind = cell.cell_type if cell.cell_type in _CELL_KINDS else "raw"
    return Cell(kind, source, line=1, metadata=_notebook_metadata(cell.get("metadata", {})))


def _notebook_metadata(metadata: dict[str, Any]) -> Metadata:
    """Metadata as percent marker pairs; keys that cannot be written on a marker line are left out."""
    return tuple(
        (key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in metadata.items()
        if _METADATA_KEY.fullmatch(f"{key}=")
    )


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]
