"""Running `python -m gradrepl ...` from a test: the command, a percent script of cells, and
the JSON records `--json` prints. The timeout only keeps a broken build from hanging the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any


def gradrepl(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None,
             **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gradrepl", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env=env if env is not None else {**os.environ, "NO_COLOR": "1"}, **kwargs,
    )


def script(tmp_path: Path, *cells: str) -> Path:
    path = tmp_path / "cells.py"
    path.write_text("".join(f"# %%\n{textwrap.dedent(cell).strip()}\n\n" for cell in cells))
    return path


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def reader_goes_away(*args: str) -> tuple[int, str]:
    """Run `gradrepl ARGS`, read one line of its stdout and close it (`... | head -1`): its
    exit status and stderr."""
    run = subprocess.Popen([sys.executable, "-m", "gradrepl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stdout is not None and run.stderr is not None
    assert run.stdout.readline()
    run.stdout.close()
    err = run.stderr.read()
    return run.wait(timeout=120), err
