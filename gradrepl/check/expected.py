"""The outputs a lesson's cells are expected to print, and where they are kept:

* a notebook (`.ipynb`): the outputs stored in it;
* a script: its golden file beside it (`NAME.py` -> `NAME.expected.jsonl`, one line per code
  cell in `gradrepl replay --json`'s schema), else the outputs of the jupytext-paired
  notebook beside it (`NAME.ipynb`).

`--update` writes them: the golden file, or the notebook's outputs and execution counts (every
MIME type the kernel sent is kept). Either is written to a temporary file first and moved over
the old one, so an interrupted update leaves the old file whole.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradrepl.cells.percent import write_atomically

GOLDEN_SUFFIX = ".expected.jsonl"
METADATA_KEY = "gradrepl"  # a notebook cell's metadata: {"autograd": ...}


class ExpectedError(Exception):
    """Expected outputs that cannot be read or written; str() is one line for the user."""


@dataclass(frozen=True)
class Outputs:
    """What one code cell printed, as compared: its streams, Out[] text, displays' text and error."""

    stdout: str = ""
    stderr: str = ""
    result: str | None = None
    displays: tuple[str, ...] = ()
    error: tuple[str, str] | None = None  # ename, evalue
    source: str | None = None  # the cell's code when these were recorded (golden files keep it)
    extra: Mapping[str, Any] | None = None  # the golden line as written
    autograd: Mapping[str, Any] | None = None  # autograd_expect's record, when one was made

    @classmethod
    def from_notebook(cls, outputs: Sequence[Mapping[str, Any]], metadata: Mapping[str, Any] | None = None) -> Outputs:
        streams = {"stdout": "", "stderr": ""}
        result: str | None = None
        displays: list[str] = []
        error: tuple[str, str] | None = None
        for output in outputs:
            kind = output.get("output_type")
            if kind == "stream" and output.get("name") in streams:
                streams[str(output["name"])] += _text(output.get("text"))
            elif kind == "execute_result":
                result = _text((output.get("data") or {}).get("text/plain"))
            elif kind == "display_data":
                displays.append(_text((output.get("data") or {}).get("text/plain")))
            elif kind == "error":
                error = (str(output.get("ename", "")), str(output.get("evalue", "")))
        own = (metadata or {}).get(METADATA_KEY)
        autograd = own.get("autograd") if isinstance(own, Mapping) else None
        return cls(streams["stdout"], streams["stderr"], result, tuple(displays), error,
                   autograd=autograd if isinstance(autograd, Mapping) else None)

    @classmethod
    def from_golden(cls, line: Mapping[str, Any]) -> Outputs:
        error = line.get("error")
        return cls(str(line.get("stdout") or ""), str(line.get("stderr") or ""), line.get("result"),
                   tuple(str(d) for d in line.get("displays") or ()),
                   (str(error.get("ename", "")), str(error.get("evalue", ""))) if isinstance(error, Mapping) else None,
                   line.get("source"), line, line.get("autograd") if isinstance(line.get("autograd"), Mapping) else None)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Expected:
    """Each code cell's expected outputs (None: none recorded for it) and where they came from."""

    origin: Path
    cells: tuple[Outputs | None, ...]
    lines: tuple[int, ...] = ()  # a notebook's code cells: the file line where each begins


def golden_path(script: Path) -> Path:
    return script.with_name(script.stem + GOLDEN_SUFFIX)


def paired_notebook(script: Path) -> Path | None:
    notebook = script.with_suffix(".ipynb")
    return notebook if script.suffix.lower() != ".ipynb" and notebook.is_file() else None


def find_expected(path: Path) -> Expected | None:
    """The expected outputs of the lesson at `path`, or None when it has none."""
    if path.suffix.lower() == ".ipynb":
        return read_notebook_outputs(path)
    golden = golden_path(path)
    if golden.is_file():
        return read_golden(golden)
    notebook = paired_notebook(path)
    return read_notebook_outputs(notebook) if notebook is not None else None


def read_golden(path: Path) -> Expected:
    cells: dict[int, Outputs] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ExpectedError(f"gradrepl: cannot read '{path}': {getattr(err, 'strerror', None) or err}") from err
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise ExpectedError(f"gradrepl: '{path}' line {number} is not JSON ({err}): write it again with --update") from err
        if not isinstance(record, dict) or not isinstance(record.get("cell"), int):
            raise ExpectedError(f"gradrepl: '{path}' line {number} is not a cell of gradrepl replay --json")
        cells[record["cell"]] = Outputs.from_golden(record)
    count = max(cells, default=0)
    return Expected(path, tuple(cells.get(n) for n in range(1, count + 1)))


def _load_notebook(path: Path) -> Any:
    import nbformat

    try:
        text = path.read_text(encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return text, nbformat.reads(text, as_version=4)
    except (OSError, UnicodeDecodeError) as err:
        raise ExpectedError(f"gradrepl: cannot read '{path}': {getattr(err, 'strerror', None) or err}") from err
    except Exception as err:  # nbformat signals a malformed notebook with many exception types
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ExpectedError(f"gradrepl: '{path}' is not a valid notebook ({first})") from err


def read_notebook_outputs(path: Path) -> Expected:
    text, notebook = _load_notebook(path)
    starts = cell_lines(text)
    code = [(index, cell) for index, cell in enumerate(notebook.cells) if cell.get("cell_type") == "code"]
    lines = tuple(starts[index] if index < len(starts) else 1 for index, _ in code)
    return Expected(path, tuple(Outputs.from_notebook(cell.get("outputs") or (), cell.get("metadata")) for _, cell in code), lines)


def cell_lines(text: str) -> list[int]:
    """The file line of each cell of a notebook's JSON text, in order: where its
    `"cell_type":` key is (inside a JSON string a quote is escaped, so the key is only
    ever a cell's)."""
    lines: list[int] = []
    at, line = 0, 1
    while True:
        found = text.find('"cell_type":', at)
        if found < 0:
            return lines
        line += text.count("\n", at, found)
        lines.append(line)
        at = found + 1


# The fields of a replay --json line a golden file keeps: what a cell printed, not the probe's
# whole snapshot (a training lesson's would be a megabyte, and change at every update).
GOLDEN_KEYS = ("cell", "line", "source", "status", "execution_count", "stdout", "stderr", "result", "displays", "error",
               "autograd")


def golden_line(record: Mapping[str, Any]) -> dict[str, Any]:
    """A replay --json line as a golden file keeps it; an error without its traceback (the
    frames name this machine's paths; ename and evalue are what is compared)."""
    line = {key: record[key] for key in GOLDEN_KEYS if key in record}
    error = line.get("error")
    if isinstance(error, Mapping):
        line["error"] = {key: error[key] for key in ("ename", "evalue", "line") if key in error}
    return line


def write_golden(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    _replace(path, "".join(json.dumps(golden_line(record), ensure_ascii=False) + "\n" for record in records))


def write_notebook_outputs(path: Path, outputs: Mapping[int, tuple[Sequence[Mapping[str, Any]], int | None]],
                           autograd: Mapping[int, Mapping[str, Any]] | None = None) -> None:
    """The notebook at `path` with each code cell's outputs and execution count replaced
    (`outputs`: by code cell number from 1), and its autograd expectations when given; cells
    not in `outputs` keep theirs."""
    import nbformat

    _, notebook = _load_notebook(path)
    number = 0
    for cell in notebook.cells:
        if cell.get("cell_type") != "code":
            continue
        number += 1
        if number in outputs:
            cell_outputs, count = outputs[number]
            cell["outputs"] = [nbformat.from_dict(dict(output)) for output in cell_outputs]
            cell["execution_count"] = count
        if autograd is not None and number in autograd:
            own = dict(cell.get("metadata", {}).get(METADATA_KEY) or {})
            own["autograd"] = dict(autograd[number])
            cell.setdefault("metadata", {})[METADATA_KEY] = own
    _replace(path, nbformat.writes(notebook) + "\n")


def _replace(path: Path, text: str) -> None:
    try:
        write_atomically(path, text.encode("utf-8"))
    except OSError as err:
        raise ExpectedError(f"gradrepl: cannot write '{path}': {err.strerror or err}") from err
