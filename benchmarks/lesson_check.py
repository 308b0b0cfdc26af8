"""check-vs-nbval, check-jobs-2: `gradrepl check` of the examples/ lessons, as notebooks with
their outputs, against `pytest --nbval` on the same notebooks; and `-j 2` against `-j 1`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import GRADREPL, REPO, BenchError, Row, median, say
from benchmarks.replay import check_kernelspec_resolution, run_timed, write_kernelspec

EXAMPLES = REPO / "examples"


def lesson_notebooks(folder: Path) -> list[Path]:
    """Each example written as a notebook by `gradrepl replay --to-notebook` (its outputs are
    Jupyter's: tests/test_to_notebook.py checks that against nbconvert)."""
    made = []
    for script in sorted(EXAMPLES.glob("*.py")):
        out = folder / f"{script.stem}.ipynb"
        subprocess.run([str(GRADREPL), "replay", str(script), "--to-notebook", str(out)], cwd=EXAMPLES,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False)
        if not out.is_file():
            raise BenchError(f"gradrepl replay --to-notebook wrote no {out.name}")
        made.append(out)
    return made


def bench_lesson_check(rounds: int) -> list[Row]:
    if not GRADREPL.exists():
        raise BenchError(f"{GRADREPL} is missing (run scripts/bootstrap)")
    import importlib.util

    if importlib.util.find_spec("nbval") is None:
        raise BenchError("nbval is not installed (it comes with the test extra: scripts/bootstrap test)")
    with tempfile.TemporaryDirectory(prefix="gradrepl-bench-check-") as tmp_name:
        tmp = Path(tmp_name)
        lessons = tmp / "lessons"
        lessons.mkdir()
        notebooks = lesson_notebooks(lessons)
        jupyter_path = write_kernelspec(tmp / "jupyter")
        check_kernelspec_resolution(jupyter_path)
        env = dict(os.environ, JUPYTER_PATH=str(jupyter_path))
        # nbval fails a cell that prints a memory address (it has no default rule for them): the
        # timing counts either way, so its exit status is not asked for.
        commands = {
            "check": [str(GRADREPL), "check", "."],
            "check-j2": [str(GRADREPL), "check", "-j", "2", "."],
            "nbval": [sys.executable, "-m", "pytest", "--nbval", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                      "-o", "addopts=", "."],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for index in range(rounds):
            order = list(commands) if index % 2 == 0 else list(reversed(commands))
            for name in order:
                times[name].append(_timed(commands[name], lessons, env, name))
            say(f"check-vs-nbval: round {index + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1]:.1f} s" for n in order))
    check, nbval, jobs2 = times["check"], times["nbval"], times["check-j2"]
    versus = median([c / n for c, n in zip(check, nbval, strict=True)])
    parallel = median([j / c for j, c in zip(jobs2, check, strict=True)])
    what = f"the {len(notebooks)} examples/ lessons as notebooks with their outputs"
    return [
        Row("check-vs-nbval", median(check), "s", "pytest --nbval, same notebooks", median(nbval), versus,
            "ratio <= 0.7", versus <= 0.7, note=f"gradrepl check -j 1 on {what}; ratio: median of per-round ratios",
            samples=check, anchor_samples=nbval),
        # -j 1 already starts the next lesson's kernel (and its torch import) while a lesson
        # runs, so on 2 cores -j 2 can only win the cells' own time: faster by a tenth at least.
        Row("check-jobs-2", median(jobs2), "s", "gradrepl check -j 1", median(check), parallel,
            "ratio <= 0.9", parallel <= 0.9, note=f"-j 2 on {what}, this 2-core machine",
            samples=jobs2, anchor_samples=check),
    ]


def _timed(argv: list[str], cwd: Path, env: dict[str, str], name: str) -> float:
    if name != "nbval":
        return run_timed(argv, cwd=cwd, env=env, label=f"gradrepl {name}")
    import time

    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600, check=False)
    return time.perf_counter() - start
