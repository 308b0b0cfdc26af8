"""`pytest --gradrepl PATH`: gradrepl check as a pytest plugin (registered through the `pytest11`
entry point, so installing gradrepl is enough), the way nbval is one: each lesson (a notebook,
or a cell script with expected outputs) is a test module and each code cell an item. The file
runs once, in a fresh kernel, when its first item runs; each item then passes, fails with the
same diff `gradrepl check` prints, or is skipped. The options are check's, prefixed:
`--gradrepl-lax`, `--gradrepl-rtol`, `--gradrepl-atol`, `--gradrepl-float-tolerance`,
`--gradrepl-sanitize-with`, `--gradrepl-ignore-stderr`, `--gradrepl-seed`,
`--gradrepl-cell-timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gradrepl.check.compare import CellVerdict, Comparison
from gradrepl.check.expected import find_expected, golden_path, paired_notebook


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradrepl", "lesson checks (gradrepl check)")
    group.addoption("--gradrepl", action="store_true", help="collect notebooks and cell scripts with expected outputs "
                    "as tests, each code cell an item, as gradrepl check compares them")
    group.addoption("--gradrepl-lax", action="store_true", help="compare only cells marked NBVAL_CHECK_OUTPUT")
    group.addoption("--gradrepl-rtol", type=float, default=1.3e-6, help="relative tolerance for tensor values")
    group.addoption("--gradrepl-atol", type=float, default=1e-5, help="absolute tolerance for tensor values")
    group.addoption("--gradrepl-float-tolerance", action="store_true", help="compare other floats in the text numerically")
    group.addoption("--gradrepl-sanitize-with", action="append", default=[], help="nbval-style sanitize file")
    group.addoption("--gradrepl-ignore-stderr", action="store_true", help="do not compare stderr")
    group.addoption("--gradrepl-seed", type=int, default=None, help="seed random, numpy and torch before each file")
    group.addoption("--gradrepl-cell-timeout", type=float, default=None, help="seconds a cell may run")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not parent.config.getoption("gradrepl"):
        return None
    if file_path.suffix == ".ipynb" or (file_path.suffix == ".py" and _has_expected(file_path)):
        return LessonFile.from_parent(parent, path=file_path)
    return None


def _has_expected(path: Path) -> bool:
    return golden_path(path).is_file() or paired_notebook(path) is not None


def _options(config: pytest.Config) -> Any:
    from gradrepl.check.normalise import Normaliser, sanitize_rules
    from gradrepl.check.runner import CheckOptions
    from gradrepl.check.tensor_text import Tolerance

    cached = getattr(config, "_gradrepl_options", None)
    if cached is None:
        option = config.getoption
        rules = sanitize_rules([Path(p) for p in option("gradrepl_sanitize_with")])
        comparison = Comparison(Tolerance(option("gradrepl_rtol"), option("gradrepl_atol"), option("gradrepl_float_tolerance")),
                                Normaliser(rules), option("gradrepl_ignore_stderr"))
        cached = CheckOptions(comparison, option("gradrepl_lax"), False, option("gradrepl_cell_timeout"), option("gradrepl_seed"))
        config._gradrepl_options = cached  # type: ignore[attr-defined]
    return cached


class LessonFailure(Exception):
    """A cell that did not print what was expected; str() is check's text for it."""


class LessonFile(pytest.File):
    """One lesson; its code cells are the items."""

    result: Any = None

    def collect(self) -> Iterator[pytest.Item]:
        from gradrepl.cells import ScriptError, read_script
        from gradrepl.check.expected import ExpectedError

        try:
            script = read_script(self.path)
            expected = find_expected(self.path)
        except (ScriptError, ExpectedError) as err:
            raise pytest.Collector.CollectError(str(err)) from err
        if expected is None:
            raise pytest.Collector.CollectError(f"gradrepl: '{self.path}' has no expected outputs: "
                                                f"record them with gradrepl check --update {self.path}")
        for number, cell in enumerate(script.code_cells, start=1):
            yield CellItem.from_parent(self, name=f"cell {number}", number=number, line=cell.line)

    def verdicts(self) -> dict[int, CellVerdict]:
        if self.result is None:
            from gradrepl.check.runner import check_file

            self.result = asyncio.run(check_file(self.path, _options(self.config)))
        if self.result.problem is not None:
            raise LessonFailure(self.result.problem)
        return {verdict.cell: verdict for verdict in self.result.verdicts}


class CellItem(pytest.Item):
    def __init__(self, *, number: int, line: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.number = number
        self.line = line

    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, LessonFile)
        verdict = parent.verdicts().get(self.number)
        if verdict is None:
            raise LessonFailure("not run")
        if verdict.verdict == "skipped":
            pytest.skip(verdict.summary)
        if verdict.verdict == "failed":
            from gradrepl.check.report import verdict_lines

            raise LessonFailure("\n".join(verdict_lines(self.path, verdict)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, LessonFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, max(self.line - 1, 0), f"{self.path.name}: cell {self.number}"
