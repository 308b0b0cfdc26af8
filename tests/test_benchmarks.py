"""The bench keeps out of the user's state and config: every row, each app it launches and
the kernels they start write history, journals and IPython/Jupyter files in private folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.app_start import launch_app
from benchmarks.isolation import PRIVATE_DIRS, PRIVATE_FILES, isolated

USER_VARS = [*PRIVATE_DIRS, *PRIVATE_FILES]


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the user's own folders: HOME and every variable the bench redirects."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in USER_VARS:
        monkeypatch.setenv(name, str(home / name.lower()))
    return home


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if not path.is_dir())


def test_a_bench_row_points_every_state_and_config_folder_into_its_own(user_home: Path) -> None:
    from gradrepl.ui.state.history import default_path
    from gradrepl.ui.state.journal import default_dir

    users = {name: os.environ[name] for name in USER_VARS}
    with isolated("test") as root:
        assert all(Path(os.environ[name]).is_relative_to(root) for name in USER_VARS)
        assert default_path().is_relative_to(root) and default_dir().is_relative_to(root)
        seen = subprocess.run(  # what a kernel or an app started meanwhile inherits
            [sys.executable, "-c", f"import json, os; print(json.dumps({{n: os.environ[n] for n in {USER_VARS!r}}}))"],
            capture_output=True, text=True, check=True,
        )
        assert all(Path(value).is_relative_to(root) for value in json.loads(seen.stdout).values())
    assert not root.exists()
    assert {name: os.environ[name] for name in USER_VARS} == users


@pytest.mark.kernel
def test_an_app_the_bench_launches_writes_history_and_journal_only_in_its_own_folders(
    user_home: Path, tmp_path: Path
) -> None:
    bench_root = tmp_path / "bench"
    with launch_app([sys.executable, "-m", "gradrepl"], root=bench_root, label="gradrepl") as app:
        app.wait_for("idle")
        app.type("answer = 6 * 7\r")
        app.wait_for("1 cell run")
        app.kill()  # as a bench row's app would be if it hung: its journal stays behind
    assert files_under(user_home) == []
    assert "answer = 6 * 7" in (bench_root / PRIVATE_FILES["GRADREPL_HISTORY"]).read_text()
    assert list((bench_root / PRIVATE_DIRS["GRADREPL_JOURNAL_DIR"]).glob("*.jsonl")) != []
