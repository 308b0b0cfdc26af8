"""`gradrepl replay SCRIPT --to-notebook OUT.ipynb`: the run written as a notebook, as if it had
run in Jupyter: every cell of the script in order (markdown and raw cells kept), each code cell
with its outputs as the kernel sent them (streams, results and displays with every MIME type,
errors with their tracebacks) and its execution count. A cell not run has no outputs; a skipped
one keeps its tags.

OUT is written whole or not at all, and never over a file this command did not write (a
notebook it wrote says so in its metadata), nor over the script itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gradrepl import __version__
from gradrepl.cells import Cell, Script
from gradrepl.cells.percent import write_atomically
from gradrepl.headless.replay import CellRecord

WRITTEN_BY_KEY = "gradrepl"  # notebook metadata: {"replayed_from": SCRIPT, "version": ...}


class NotebookOutError(Exception):
    """OUT cannot be written; str() is one line for the user."""


def refusal(script: Path | None, out: Path, force: bool) -> str | None:
    """Why `out` may not be written (before the run, so no cell runs for nothing), or None."""
    if script is not None and out.resolve() == script.resolve():
        return f"gradrepl: --to-notebook '{out}' is the script itself: give another file name"
    if out.suffix.lower() != ".ipynb":
        return f"gradrepl: --to-notebook '{out}': a notebook's name ends in .ipynb"
    if not out.parent.is_dir():
        return f"gradrepl: --to-notebook '{out}': no folder '{out.parent}'"
    if out.exists() and not force and not written_by_replay(out):
        return f"gradrepl: --to-notebook '{out}' exists and was not written by gradrepl replay: give another name, or --force to replace it"
    return None


def written_by_replay(path: Path) -> bool:
    try:
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False
    return isinstance(metadata, dict) and isinstance(metadata.get(WRITTEN_BY_KEY), dict)


def _metadata(cell: Cell) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in cell.metadata:
        try:
            found[key] = json.loads(value)
        except ValueError:
            found[key] = value
    return found


def run_notebook(script: Script, records: Iterable[CellRecord]) -> Any:
    """The nbformat 4 notebook of a run."""
    import nbformat

    by_number = {record.cell: record for record in records}
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    book.metadata["language_info"] = {"name": "python"}
    book.metadata[WRITTEN_BY_KEY] = {"replayed_from": script.path.name if script.path else None, "version": __version__}
    number = 0
    for cell in script.cells:
        metadata = _metadata(cell)
        if cell.kind == "markdown":
            book.cells.append(nbformat.v4.new_markdown_cell(cell.source, metadata=metadata))
            continue
        if cell.kind == "raw":
            book.cells.append(nbformat.v4.new_raw_cell(cell.source, metadata=metadata))
            continue
        number += 1
        record = by_number.get(number)
        ran = record is not None and record.status != "skipped"
        outputs = [nbformat.from_dict(dict(output)) for output in record.outputs] if ran and record else []
        count = record.execution_count if ran and record else None
        book.cells.append(nbformat.v4.new_code_cell(cell.source, metadata=metadata, outputs=outputs, execution_count=count))
    return book


def write_run(path: Path, script: Script, records: Iterable[CellRecord]) -> None:
    import nbformat

    book = run_notebook(script, records)
    nbformat.validate(book)
    try:
        write_atomically(path, (nbformat.writes(book) + "\n").encode("utf-8"))
    except OSError as err:
        raise NotebookOutError(f"gradrepl: cannot write '{path}': {err.strerror or err}") from err
