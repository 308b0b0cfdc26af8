from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
EXAMPLES = ROOT / "examples"


@pytest.fixture
def examples_copy(tmp_path: Path) -> Path:
    """The examples folder copied, so tests may write beside the scripts."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target)
    return target
