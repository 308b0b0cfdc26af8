"""The status line keeps to one row at any width: a long path loses its leading folders,
and the kernel state and the unsaved count always show."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from gradrepl.ui.widgets.status_line import StatusLine

LONG = "/tmp/a_rather_long_folder_name/another_long_folder_name/lessons/seed_autograd_lesson_one.py"


class StatusApp(App[None]):
    def compose(self) -> ComposeResult:
        yield StatusLine()


async def shown(width: int, **state: object) -> str:
    app = StatusApp()
    async with app.run_test(size=(width, 3)) as pilot:
        status = app.query_one(StatusLine)
        for name, value in state.items():
            setattr(status, name, value)
        await pilot.pause()
        return "".join(segment.text for segment in status.render_line(0)).rstrip()


@pytest.mark.parametrize("width", [80, 60])
async def test_a_long_path_keeps_its_file_name_and_the_unsaved_count_shows(width: int) -> None:
    row = await shown(width, kernel_state="idle", cells_run=12, path=LONG, unsaved=3)
    assert row.endswith("● 3 unsaved"), row
    assert "…" in row and len(row) <= width, row
    if width >= 80:
        assert "│  …/seed_autograd_lesson_one.py  ●" in row, row


async def test_a_short_path_is_shown_whole() -> None:
    row = await shown(120, kernel_state="idle", cells_run=1, path="lesson.py", unsaved=1)
    assert "│  lesson.py  ● 1 unsaved" in row and "…" not in row


async def test_a_long_reason_for_a_dead_kernel_is_cut_at_its_end_not_the_path() -> None:
    reason = "the kernel died: " + "x" * 200
    row = await shown(100, kernel_state="dead", kernel_reason=reason, cells_run=2, path="lesson.py", unsaved=2)
    assert row.endswith("lesson.py  ● 2 unsaved"), row
    assert "the kernel died" in row and "…" in row


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light", "solarized-light", "catppuccin-latte", "gruvbox"])
@pytest.mark.parametrize("state", ["idle", "busy", "starting", "dead"])
async def test_the_kernel_state_and_the_unsaved_count_are_readable_in_every_theme(theme: str, state: str) -> None:
    """textual-light's yellow "● 2 unsaved" was 1.8:1 on its panel; drawn colours are measured."""
    from textual.color import Color

    from gradrepl.ui.contrast import TEXT_CONTRAST, contrast

    app = StatusApp()
    async with app.run_test(size=(100, 3)) as pilot:
        app.theme = theme
        status = app.query_one(StatusLine)
        status.kernel_state, status.unsaved = state, 2
        await pilot.pause()
        panel = Color.parse(app.theme_variables["panel"]).rgb
        for segment in status.render_line(0):
            if not segment.text.strip(" │") or segment.style is None or segment.style.color is None:
                continue
            background = segment.style.bgcolor.get_truecolor() if segment.style.bgcolor else panel
            ratio = contrast(segment.style.color.get_truecolor(), background)
            assert ratio >= TEXT_CONTRAST, (segment.text, round(ratio, 2))


@pytest.mark.parametrize("path", ["", "lesson.py", "/home/me/lessons/lesson.py"])
async def test_a_dead_kernels_reason_is_cut_before_the_file_name(path: str) -> None:
    """At 80 columns a dead kernel's reason kept 24 columns and left '… file' or '…on.py'."""
    reason = "(the kernel died: exit code -9, killed by the system)"
    row = await shown(80, kernel_state="dead", kernel_reason=reason, cells_run=3, path=path, unsaved=2)
    name = path.rsplit("/", 1)[-1] or "no file"
    assert row.endswith(f"{name}  ● 2 unsaved") and f"…{name}" not in row.replace("…/", ""), row
    assert "(the kernel died" in row and "…" in row and len(row) <= 80, row


@pytest.mark.parametrize("width", [120, 80])
async def test_a_kernel_on_a_server_shows_where_with_its_round_trip_and_the_path_gives_way(width: int) -> None:
    row = await shown(width, kernel_state="idle", link="on gpu-box:8888 12 ms", cells_run=3, path=LONG, unsaved=1)
    assert row.startswith(" kernel  idle  on gpu-box:8888 12 ms  │  3 cells run  │  "), row
    assert row.endswith("● 1 unsaved") and len(row) <= width, row
