"""The screen printed in the README is the one the app draws: the snapshot of the seed
resumed with its backward cell run three more times (tests/test_snapshots_recorded.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.svg_text import screen_rows

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests/__snapshots__/test_snapshots_recorded/test_backward_cell_run_three_times_more.svg"
TOAST = "▌"  # a notification's left edge: the README shows the screen without it


def readme_screen() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```\n╭─ Transcript") + len("```\n")
    return text[start:text.index("```", start)].rstrip("\n").split("\n")


def test_the_readme_screen_is_the_apps() -> None:
    readme, drawn = readme_screen(), screen_rows(SNAPSHOT)
    assert len(readme) == len(drawn) == 40
    for number, (printed, shown) in enumerate(zip(readme, drawn, strict=True), 1):
        cut = shown.find(TOAST)
        if cut >= 0:
            printed, shown = printed[:cut], shown[:cut]
        assert printed.rstrip() == shown.rstrip(), (
            f"README.md's screen differs from {SNAPSHOT.name} in row {number}: print the snapshot's rows with "
            f"`.venv/bin/python tests/support/svg_text.py {SNAPSHOT.relative_to(ROOT)}` and copy them into README.md"
        )


STEPPER = ROOT / "tests/__snapshots__/test_snapshots_recorded/test_the_backward_stepper.svg"


def test_the_readme_stepper_is_the_apps() -> None:
    """The stepper box under "The chain rule, node by node" is the box the stepper snapshot draws."""
    drawn = screen_rows(STEPPER)
    top = next(i for i, row in enumerate(drawn) if "the chain rule, node by node" in row)
    left = drawn[top].index("╭─ In [")
    right = drawn[top].index("╮", left) + 1
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### The chain rule, node by node"):]
    printed = section[section.index("```text\n") + len("```text\n"):section.index("\n```", section.index("```text\n"))]
    lines = printed.split("\n")
    assert lines == [row[left:right] for row in drawn[top:top + len(lines)]], (
        f"README.md's stepper differs from {STEPPER.name}: copy the box's rows from "
        f"`.venv/bin/python tests/support/svg_text.py {STEPPER.relative_to(ROOT)}`"
    )


def excerpt(snapshot: str, first: str, last: str, columns: slice) -> list[str]:
    """The rows of a snapshot from the one holding `first` to the one holding `last`, cut to `columns`."""
    rows = screen_rows(ROOT / "tests/__snapshots__/test_snapshots_recorded" / snapshot)
    start = next(i for i, row in enumerate(rows) if first in row)
    end = next(i for i in range(start, len(rows)) if last in rows[i])
    return [row[columns].rstrip() for row in rows[start:end + 1]]


def readme_block(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading):]
    start = section.index("```screen\n") + len("```screen\n")
    return section[start:section.index("\n```", start)].split("\n")


SCREENS = {  # README heading -> (snapshot, first row's text, last row's text, columns)
    "### Where a NaN was born": ("test_where_the_nan_was_born.svg", "Out[1]:", "saved self (shifted):", slice(1, 66)),
    "### Gradient health over steps": ("test_gradient_health_over_steps.svg", "─ Tensors", "19 tensors", slice(0, 120)),
}


@pytest.mark.parametrize("heading", sorted(SCREENS))
def test_the_readme_screens_of_the_gradient_lens_are_the_apps(heading: str) -> None:
    snapshot, first, last, columns = SCREENS[heading]
    assert readme_block(heading) == excerpt(snapshot, first, last, columns), (
        f"README.md's screen under {heading!r} differs from {snapshot}: copy its rows from "
        f"`.venv/bin/python tests/support/svg_text.py tests/__snapshots__/test_snapshots_recorded/{snapshot}`"
    )
