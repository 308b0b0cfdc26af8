"""What a `pip install .` ships: every package of gradrepl, found by setuptools."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_folder_of_python_modules_is_a_package() -> None:
    """setuptools' find_packages skips folders without __init__.py: their modules would be
    missing from a wheel while an editable install still finds them."""
    folders = {path.parent for path in (ROOT / "gradrepl").rglob("*.py") if "__pycache__" not in path.parts}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists())
    assert missing == []
