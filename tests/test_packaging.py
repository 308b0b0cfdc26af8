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


def test_a_wheel_ships_gradrepl_and_nothing_beside_it() -> None:
    """benchmarks/ and tests/ sit beside gradrepl/ at the root: pyproject's package search
    (as setuptools expands it for a build) must take gradrepl's packages only."""
    from setuptools.config.pyprojecttoml import read_configuration

    packages = read_configuration(ROOT / "pyproject.toml")["tool"]["setuptools"]["packages"]
    assert "gradrepl" in packages
    assert [name for name in packages if name != "gradrepl" and not name.startswith("gradrepl.")] == []
