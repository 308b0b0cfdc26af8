"""The screen printed in the README is the one the app draws: the snapshot of the seed
resumed with its backward cell run three more times (tests/test_snapshots_recorded.py)."""

from __future__ import annotations

from pathlib import Path

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
