"""`gradrepl check`: each lesson run in a fresh kernel (replay's engine, every cell run even
after a failing one) and each code cell judged against its expected outputs, or, with
`update`, its expected outputs written."""

from __future__ import annotations

import ast
import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from gradrepl.cells import Script, ScriptError, marked_skipped, read_script
from gradrepl.check import autograd_expect
from gradrepl.check.compare import CellVerdict, Comparison, judge
from gradrepl.check.expected import (
    Expected,
    ExpectedError,
    Outputs,
    find_expected,
    golden_path,
    paired_notebook,
    write_golden,
    write_notebook_outputs,
)
from gradrepl.check.markers import CellDirectives, directives
from gradrepl.client.events import Display, Error, Result, Stream
from gradrepl.client.existing import Existing
from gradrepl.client.kernel_choice import one_kernel
from gradrepl.client.remote import Server
from gradrepl.client.session import KernelError, KernelSession
from gradrepl.headless.replay import CellRecord, SetupError, replay
from gradrepl.protocol import SANDBOX_ENV, TensorInfo, sandbox_request

SKIPPED_FOLDERS = frozenset({".git", ".ipynb_checkpoints", "__pycache__", ".venv", "venv", "node_modules", "build", "dist"})


@dataclass(frozen=True)
class CheckOptions:
    comparison: Comparison = field(default_factory=Comparison)
    lax: bool = False
    update: bool = False
    cell_timeout: float | None = None
    seed: int | None = None
    kernel_env: dict[str, str] = field(default_factory=dict)
    autograd: bool = False  # --update: record autograd expectations (kept anyway where there were some)
    attach: Existing | Server | None = None  # --existing, --server: a running kernel runs every lesson in turn


@dataclass(frozen=True)
class FileResult:
    path: Path
    verdicts: tuple[CellVerdict, ...] = ()
    problem: str | None = None  # the file could not be checked (bad input): one line
    updated: str | None = None  # --update: what was written

    @property
    def failed(self) -> bool:
        return self.problem is not None or any(v.verdict == "failed" for v in self.verdicts)


def lessons(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """The lessons under `paths`: each file named, and in each folder the notebooks and the cell
    scripts (`# %%` or sphinx-gallery; a script paired with a notebook beside it is that
    notebook's); with the problems (a path that does not exist), one line each."""
    found: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found += _folder_lessons(path)
        elif path.is_file():
            found.append(path)
        else:
            problems.append(f"gradrepl: '{path}' does not exist" if not os.path.lexists(path) else f"gradrepl: '{path}' is not a file or folder")
    unique = list(dict.fromkeys(found))
    return unique, problems


def _folder_lessons(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if f not in SKIPPED_FOLDERS and not f.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.endswith(".ipynb") or (name.endswith(".py") and paired_notebook(path) is None and _is_cell_script(path)):
                found.append(path)
    return found


def _is_cell_script(path: Path) -> bool:
    try:
        return read_script(path).format in ("percent", "sphinx", "nbconvert")
    except ScriptError:
        return True  # named in the report as unreadable rather than passed over


def _with_skips(script: Script, marks: list[CellDirectives]) -> Script:
    code = iter(marks)
    cells = tuple(marked_skipped(cell, "NBVAL_SKIP") if cell.kind == "code" and next(code).skip else cell
                  for cell in script.cells)
    return replace(script, cells=cells)


def seed_code(seed: int) -> str:
    return (f"import random as _r\n_r.seed({seed})\ndel _r\n"
            f"try:\n    import numpy as _n\n    _n.random.seed({seed})\n    del _n\nexcept ImportError:\n    pass\n"
            f"try:\n    import torch as _t\n    _t.manual_seed({seed})\n    del _t\nexcept ImportError:\n    pass\n")


def new_session(path: Path, options: CheckOptions) -> KernelSession:
    """A lesson's kernel; under --sandbox it may write in its own lesson's folder (and the
    --sandbox-writable ones), never in another lesson's."""
    env = dict(options.kernel_env)
    request = sandbox_request(env)
    if request is not None:
        own = replace(request, writable=tuple(sorted({str(path.parent.resolve()), *request.writable})))
        env[SANDBOX_ENV] = own.to_json()
    return KernelSession(cwd=path.parent, env=env, attach=options.attach)


def imports_torch_first(path: Path) -> bool:
    """Whether the lesson's first statement imports torch (`import torch`, `from torch import
    nn`): then importing it ahead, in a kernel started early, is what its first cell does first."""
    try:
        cells = read_script(path).code_cells
        tree = ast.parse(cells[0].source) if cells else None
    except (ScriptError, SyntaxError, ValueError):
        return False
    first = tree.body[0] if tree is not None and tree.body else None
    if isinstance(first, ast.Import):
        return first.names[0].name.split(".")[0] == "torch"
    return isinstance(first, ast.ImportFrom) and first.level == 0 and (first.module or "").split(".")[0] == "torch"


async def warmed_up(session: KernelSession, path: Path) -> None:
    """Start a lesson's kernel ahead of its turn, with torch imported when that is what the
    lesson does first (a second or two of each lesson). Should the import print anything or
    fail, that kernel is replaced by a fresh one, so the lesson's first cell shows it as in Jupyter."""
    await session.start()
    if one_kernel(session.existing or session.server) or not imports_torch_first(path):  # not fresh: nothing to replace it by
        return
    outcome = await session.run("import torch", store_history=False)
    if outcome.status != "ok" or any(isinstance(e, Stream | Display | Error | Result) for e in outcome.events):
        await session.restart()


async def check_file(path: Path, options: CheckOptions, session: KernelSession | None = None,
                     started: Awaitable[None] | None = None,
                     done_with: Callable[[KernelSession], None] | None = None) -> FileResult:
    """One lesson's verdicts (or, with `update`, its expected outputs written). `session`: a
    kernel started for it ahead of time (`started` ends when it is ready); when the file is
    done it goes to `done_with`, else it is shut down here, whatever happens."""
    session = session or new_session(path, options)
    try:
        if started is not None:
            try:
                await started
            except KernelError as err:
                return FileResult(path, problem=str(err))
        return await _check_file(path, options, session)
    finally:
        if done_with is not None:
            done_with(session)
        else:
            await session.shutdown()


async def _check_file(path: Path, options: CheckOptions, session: KernelSession) -> FileResult:
    try:
        script = read_script(path)
    except ScriptError as err:
        return FileResult(path, problem=str(err))
    try:
        expected = find_expected(path)
    except ExpectedError as err:
        return FileResult(path, problem=str(err))
    if expected is None and not options.update:
        return FileResult(path, problem=f"gradrepl: '{path}' has no expected outputs ({golden_path(path).name} or a "
                                        f"paired .ipynb): record them with gradrepl check --update {path}")
    marks = [directives(cell) for cell in script.code_cells]
    records: list[CellRecord] = []
    try:
        await replay(_with_skips(script, marks), records.append, keep_going=True, cell_timeout=options.cell_timeout,
                     session=session, setup=None if options.seed is None else seed_code(options.seed))
    except KernelError as err:
        return FileResult(path, problem=str(err))
    except SetupError as err:
        return FileResult(path, problem=f"gradrepl: '{path}': --seed could not be set: {err}")
    verdicts = _verdicts(script, marks, records, expected, options)
    if not options.update:
        return FileResult(path, verdicts)
    try:
        written = _write(path, expected, records, options.autograd)
    except ExpectedError as err:
        return FileResult(path, verdicts, problem=str(err))
    failures = tuple(v for v in verdicts if v.verdict == "failed")
    return FileResult(path, failures, updated=written)


def _verdicts(script: Script, marks: list[CellDirectives], records: list[CellRecord], expected: Expected | None,
              options: CheckOptions) -> tuple[CellVerdict, ...]:
    by_number = {record.cell: record for record in records}
    wanted = expected.cells if expected is not None else ()
    lines = expected.lines if expected is not None and expected.lines else None
    verdicts: list[CellVerdict] = []
    died_in: int | None = None
    for number, cell in enumerate(script.code_cells, start=1):
        line = lines[number - 1] if lines and number <= len(lines) else cell.line
        record = by_number.get(number)
        if record is None:
            after = f"the kernel died in cell {died_in}" if died_in else "an earlier cell stopped the run"
            verdicts.append(CellVerdict(number, line, "failed", f"not run: {after}"))
            continue
        if record.status == "died":
            died_in = number
        want = wanted[number - 1] if number <= len(wanted) else None
        if options.update:  # only the cells that fail unexpectedly are reported
            want = None
        actual = Outputs(record.stdout, record.stderr, record.result, tuple(record.displays),
                         (record.error.ename, record.error.evalue) if record.error else None, record.source)
        mark = marks[number - 1]
        if options.update:
            mark = CellDirectives(ignore=True, raises=mark.raises, skip=mark.skip)
        autograd = [] if want is None or want.autograd is None or record.status == "skipped" else \
            autograd_expect.differences(want.autograd, record.tensors, record.backward, options.comparison.tolerance)
        verdicts.append(judge(number, line, record.status, record.reason, want, actual, mark, options.comparison,
                              options.lax, autograd))
    return tuple(verdicts)


def _autograd_records(records: list[CellRecord]) -> dict[int, dict[str, object]]:
    found: dict[int, dict[str, object]] = {}
    before: dict[str, TensorInfo] = {}
    for record in records:
        if record.status == "skipped":
            continue
        found[record.cell] = autograd_expect.record(before, record.tensors, record.backward)
        before = {info.name: info for info in record.tensors}
    return found


def _write(path: Path, expected: Expected | None, records: list[CellRecord], autograd: bool) -> str:
    """Write the run's outputs where the expected ones were read (a new golden file when there
    were none), with autograd expectations when asked or when there were some; say what was written."""
    ran = [record for record in records if record.status != "skipped"]
    target = expected.origin if expected is not None else (path if path.suffix.lower() == ".ipynb" else golden_path(path))
    if expected is not None and any(outputs is not None and outputs.autograd is not None for outputs in expected.cells):
        autograd = True
    expectations = _autograd_records(records) if autograd else {}
    if target.suffix.lower() == ".ipynb":
        write_notebook_outputs(target, {r.cell: (r.outputs, r.execution_count) for r in ran}, expectations or None)
    else:
        kept = {record.cell: {**record.to_json(), **({"autograd": expectations[record.cell]} if record.cell in expectations else {})}
                for record in records}
        skipped = {record.cell for record in records if record.status == "skipped"}
        if expected is not None:  # a skipped cell keeps what it had
            for number, outputs in enumerate(expected.cells, start=1):
                if number in skipped and outputs is not None and outputs.extra is not None:
                    kept[number] = dict(outputs.extra)
        write_golden(target, [kept[number] for number in sorted(kept)])
    return f"wrote the outputs of {len(ran)} cell{'s' if len(ran) != 1 else ''} to {target}"


async def check_all(paths: list[Path], options: CheckOptions, jobs: int, on_result: Callable[[FileResult], None]) -> list[FileResult]:
    """Check each lesson, `jobs` at a time (each in its kernel); results are handed on in the
    order of `paths`, each as soon as it and those before it are done. While a file runs, the
    kernel of the file that will take its place is already starting (a fresh kernel and its
    imports are most of a short lesson's time)."""
    jobs = max(1, jobs)
    limit = asyncio.Semaphore(jobs)
    launched: dict[int, tuple[KernelSession, asyncio.Future[None]]] = {}
    ending: list[asyncio.Future[None]] = []  # kernels of finished files exit while the next file runs

    def launch(index: int) -> None:
        if index < len(paths) and index not in launched:
            session = new_session(paths[index], options)
            launched[index] = (session, asyncio.ensure_future(warmed_up(session, paths[index])))

    def done_with(session: KernelSession) -> None:
        ending.append(asyncio.ensure_future(session.shutdown()))

    async def one(index: int) -> FileResult:
        async with limit:
            launch(index)
            launch(index + jobs)
            session, started = launched.pop(index)
            return await check_file(paths[index], options, session, started, done_with)

    tasks = [asyncio.ensure_future(one(index)) for index in range(len(paths))]
    results: list[FileResult] = []
    try:
        for task in tasks:
            result = await task
            on_result(result)
            results.append(result)
    finally:
        for task in tasks:
            task.cancel()
        for session, started in launched.values():  # started ahead for files not reached (interrupted)
            started.cancel()
            ending.append(asyncio.ensure_future(session.shutdown()))
        await asyncio.gather(*ending, return_exceptions=True)
    return results
