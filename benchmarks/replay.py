"""replay-seed, replay-seed-nbconvert, replay-vs-nbconvert: `gradrepl replay` of the seed
notebook's cells against the same cells as one flat Python file, and as an executed notebook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import GRADREPL, REPO, SEED, BenchError, Row, alternating, last_line, median, say

RUN_TIMEOUT = 300.0  # seconds, for any one timed command
LABELS = {"replay": "gradrepl replay", "flat": "python flat.py", "nbconvert": "nbconvert --execute"}

Command = tuple[list[str], Path, dict[str, str] | None]  # argv, cwd, environment (None: this one)


def run_timed(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, label: str, ok: tuple[int, ...] = (0,)) -> float:
    """Wall time of one command, stdout to /dev/null; BenchError unless it exits with a code in `ok`."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            code = process.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            stop(process)
            raise BenchError(f"{label} took more than {RUN_TIMEOUT:.0f} s") from None
        except BaseException:
            stop(process)
            raise
        elapsed = time.perf_counter() - start
        if code not in ok:
            err.seek(0)
            message = err.read().decode("utf-8", "replace").strip()
            if message:
                raise BenchError(f"{label} exited with status {code}: {last_line(message)}")
            shown = " ".join(argv)
            raise BenchError(
                f"{label} exited with status {code} and no message on stderr "
                f"(stdout went to /dev/null; run it by hand in {cwd}: {shown})"
            )
    return elapsed


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT first (gradrepl replay shuts its kernel down on it), then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def write_kernelspec(root: Path) -> Path:
    """A private kernelspec "python3" that runs this interpreter; returns the JUPYTER_PATH dir."""
    from ipykernel.kernelspec import write_kernel_spec

    write_kernel_spec(root / "kernels" / "python3")  # argv[0] = sys.executable
    spec = json.loads((root / "kernels" / "python3" / "kernel.json").read_text())
    if spec["argv"][0] != sys.executable:
        raise BenchError(f"kernelspec runs {spec['argv'][0]}, expected {sys.executable}")
    return root


def check_kernelspec_resolution(jupyter_path: Path) -> None:
    """With JUPYTER_PATH set as nbconvert will see it, "python3" must resolve to our spec."""
    from jupyter_client.kernelspec import KernelSpecManager

    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(jupyter_path)
    try:
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
    finally:
        if saved is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = saved
    if argv0 != sys.executable:
        raise BenchError(f"nbconvert would run kernel {argv0}, not {sys.executable}")


def write_notebook(path: Path, cells: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, str(path))


def nbconvert_command(tmp: Path, notebooks: list[Path], *, allow_errors: bool = False) -> Command:
    """nbconvert --execute of `notebooks` in one process, on this interpreter's kernel."""
    jupyter_path = write_kernelspec(tmp / "jupyter")
    check_kernelspec_resolution(jupyter_path)
    argv = [
        sys.executable, "-m", "nbconvert", "--execute", "--to", "notebook",
        "--ExecutePreprocessor.kernel_name=python3", "--ExecutePreprocessor.timeout=120",
        *(["--allow-errors"] if allow_errors else []),
        "--output-dir", str(tmp / "out"),
    ]
    if len(notebooks) == 1:
        argv += ["--output", f"{notebooks[0].stem}-executed"]
    return ([*argv, *map(str, notebooks)], tmp, dict(os.environ, JUPYTER_PATH=str(jupyter_path)))


def commands(tmp: Path, cells: list[str], with_nbconvert: bool) -> dict[str, Command]:
    """The timed commands: gradrepl replay, the flat file, and (if asked) nbconvert."""
    flat = tmp / "flat.py"
    flat.write_text("\n\n".join(cells) + "\n", encoding="utf-8")
    found: dict[str, Command] = {
        "replay": ([str(GRADREPL), "replay", str(SEED.relative_to(REPO))], REPO, None),
        "flat": ([sys.executable, str(flat)], SEED.parent, None),
    }
    if not with_nbconvert:
        return found
    notebook = tmp / "seed.ipynb"
    write_notebook(notebook, cells)
    found["nbconvert"] = nbconvert_command(tmp, [notebook])
    return found


def bench_replay(rounds: int, with_nbconvert: bool) -> list[Row]:
    from gradrepl.cells import read_script

    if not GRADREPL.exists():
        raise BenchError(f"{GRADREPL} is missing (run scripts/bootstrap)")
    cells = [cell.source for cell in read_script(SEED).code_cells]
    if not cells:
        raise BenchError(f"{SEED} has no code cells")
    with tempfile.TemporaryDirectory(prefix="gradrepl-bench-") as tmp_name:
        timed = commands(Path(tmp_name), cells, with_nbconvert)

        def run(name: str) -> float:
            argv, cwd, env = timed[name]
            return run_timed(argv, cwd=cwd, env=env, label=LABELS[name])

        say(f"replay-seed: warm-up ({', '.join(timed)})")
        for name in timed:
            run(name)
        times: dict[str, list[float]] = {name: [] for name in timed}
        for index in range(rounds):
            order = ["replay", "flat"] if index % 2 == 0 else ["flat", "replay"]
            if with_nbconvert:
                order = [*order, "nbconvert"] if index % 2 == 0 else ["nbconvert", *order]
            for name in order:
                times[name].append(run(name))
            shown = ", ".join(f"{name} {times[name][-1]:.2f} s" for name in order)
            say(f"replay-seed: round {index + 1}/{rounds}: {shown}")
    return replay_rows(times)


def replay_rows(times: dict[str, list[float]]) -> list[Row]:
    replay, flat = times["replay"], times["flat"]
    paired = median([r / f for r, f in zip(replay, flat, strict=True)])
    rows = [
        Row(
            "replay-seed", median(replay), "s", "python flat.py", median(flat), paired,
            "ratio <= 1.05", paired <= 1.05,
            note="ratio: median of per-round paired ratios", samples=replay, anchor_samples=flat,
        )
    ]
    if "nbconvert" not in times:
        return rows
    nbc = times["nbconvert"]
    rows.append(
        Row(
            "replay-seed-nbconvert", median(nbc), "s", "python flat.py", median(flat),
            median([n / f for n, f in zip(nbc, flat, strict=True)]), "info (~2.0x expected)", None,
            note="nbconvert --execute --to notebook; ratio: median of per-round ratios",
            samples=nbc, anchor_samples=flat,
        )
    )
    versus = median([r / n for r, n in zip(replay, nbc, strict=True)])
    rows.append(
        Row(
            "replay-vs-nbconvert", median(replay), "s", "nbconvert --execute", median(nbc), versus,
            "ratio < 1", versus < 1.0,
            note="ratio: median of per-round ratios", samples=replay, anchor_samples=nbc,
        )
    )
    return rows


EXAMPLES = REPO / "examples"
# The lesson on autograd's errors has cells that raise: its replay ends with status 1 by design.
# Any other status, or 1 from another lesson (a kernel that failed to start), is a failed row.
RAISING_LESSONS = {"autograd_errors.py"}
# nbconvert does the same work (a kernel per notebook, every cell) in one process and writes the
# notebooks; gradrepl replay starts a process per script and runs its probe, and still came in
# at 0.63x (2026-12-07): a fifth under nbconvert at least, whatever the lessons.
EXAMPLES_TARGET = 0.8


def bench_examples(rounds: int) -> list[Row]:
    """replay-examples-vs-nbconvert: `gradrepl replay --keep-going` of each script in examples/,
    one after another, against one `nbconvert --execute --allow-errors` of them all as notebooks."""
    from gradrepl.cells import read_script

    if not GRADREPL.exists():
        raise BenchError(f"{GRADREPL} is missing (run scripts/bootstrap)")
    scripts = sorted(EXAMPLES.glob("*.py"))
    with tempfile.TemporaryDirectory(prefix="gradrepl-bench-") as tmp_name:
        tmp = Path(tmp_name)
        notebooks = []
        for script in scripts:
            notebooks.append(tmp / f"{script.stem}.ipynb")
            write_notebook(notebooks[-1], [cell.source for cell in read_script(script).code_cells])
        nbconvert = nbconvert_command(tmp, notebooks, allow_errors=True)

        def replay_all() -> float:
            return sum(
                run_timed([str(GRADREPL), "replay", "--keep-going", str(script.relative_to(REPO))], cwd=REPO,
                          label=f"gradrepl replay {script.name}", ok=(0, 1) if script.name in RAISING_LESSONS else (0,))
                for script in scripts
            )

        def nbconvert_all() -> float:
            return run_timed(nbconvert[0], cwd=nbconvert[1], env=nbconvert[2], label="nbconvert --execute")

        say(f"replay-examples: warm-up ({len(scripts)} scripts)")
        replay_all()
        nbconvert_all()
        times: dict[str, list[float]] = {"replay": [], "nbconvert": []}
        runs = {"replay": replay_all, "nbconvert": nbconvert_all}
        for index in range(rounds):
            order = alternating(index, "replay", "nbconvert")
            for name in order:
                times[name].append(runs[name]())
            shown = ", ".join(f"{LABELS[name]} {times[name][-1]:.1f} s" for name in order)
            say(f"replay-examples: round {index + 1}/{rounds}: {shown}")
    replay, nbc = times["replay"], times["nbconvert"]
    versus = median([r / n for r, n in zip(replay, nbc, strict=True)])
    return [
        Row(
            "replay-examples-vs-nbconvert", median(replay), "s", "nbconvert --execute", median(nbc), versus,
            f"ratio <= {EXAMPLES_TARGET}", versus <= EXAMPLES_TARGET,
            note=f"the {len(scripts)} scripts of examples/: gradrepl replay --keep-going of each in turn (a process and "
            "a kernel per script) vs one nbconvert --execute --allow-errors of them all as notebooks (one process, a "
            "kernel per notebook); ratio: median of per-round ratios",
            samples=replay, anchor_samples=nbc,
        )
    ]
