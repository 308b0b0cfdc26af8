"""Syntax colours follow the app theme (transcript and input), and the theme chosen is
remembered in $XDG_CONFIG_HOME/gradrepl/config.toml. No kernel: recorded sessions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from gradrepl.ui.app import GradReplApp
from gradrepl.ui.state.config import Settings, default_path
from gradrepl.ui.state.history import History
from gradrepl.ui.state.journal import Journal
from gradrepl.ui.syntax import DARK_SYNTAX, LIGHT_INPUT, LIGHT_SYNTAX, ThemedSource
from gradrepl.ui.widgets.code_input import CodeInput
from gradrepl.ui.widgets.transcript import CellView
from support.recorded_app import ROOT, SEED, kernel_free, recorded_app, run_cell, settled, until_shown
from support.recorded_session import RecordedSession
from support.recording import load
from support.screens import faint_text

SnapCompare = Callable[..., bool]
SIZE = (120, 40)
LIGHT = "textual-light"


@pytest.fixture(autouse=True)
def private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config-home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config / "gradrepl" / "config.toml"


def app_with(settings: Settings, recording: str | None = None) -> GradReplApp:
    app = recorded_app(recording)
    app.settings = settings
    return app


def source_style(app: GradReplApp) -> str:
    """The Pygments style the last cell's source is drawn in now."""
    content = app.query(CellView).last().query_one(".source", Static).content
    assert isinstance(content, ThemedSource), content
    return content.style_name


async def test_a_light_theme_gives_light_syntax_colours_in_the_transcript_and_the_input() -> None:
    app = app_with(Settings(None), "leaf_in_place_error")
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            await run_cell(pilot, "import torch\nx = torch.ones(2, 2, requires_grad=True)")
            assert source_style(app) == DARK_SYNTAX
            assert app.query_one(CodeInput).theme == "css"
            app.theme = LIGHT
            await pilot.pause()
            assert source_style(app) == LIGHT_SYNTAX  # the cell already shown is recoloured
            assert app.query_one(CodeInput).theme == LIGHT_INPUT
            app.theme = "textual-dark"
            await pilot.pause()
            assert source_style(app) == DARK_SYNTAX
            assert app.query_one(CodeInput).theme == "css"


async def test_the_theme_chosen_is_written_and_the_next_session_starts_in_it(private_config: Path) -> None:
    first = app_with(Settings(default_path()))
    assert default_path() == private_config
    with kernel_free(first):
        async with first.run_test(size=SIZE) as pilot:
            await settled(pilot)
            first.theme = LIGHT
            await pilot.pause()
    assert 'theme = "textual-light"' in private_config.read_text()
    second = app_with(Settings(default_path()))
    with kernel_free(second):
        async with second.run_test(size=SIZE) as pilot:
            await settled(pilot)
            assert second.theme == LIGHT
            assert second.query_one(CodeInput).theme == LIGHT_INPUT


@pytest.mark.parametrize(
    "text",
    ["theme = [unclosed", 'theme = 3', 'theme = "no-such-theme"', "\xff\xfe"],
    ids=["not-toml", "not-a-string", "unknown-theme", "not-utf8"],
)
async def test_a_bad_config_is_one_warning_and_the_default_theme(private_config: Path, text: str) -> None:
    private_config.parent.mkdir(parents=True)
    private_config.write_bytes(text.encode("latin-1"))
    app = app_with(Settings(default_path()))
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            warnings = [n for n in app._notifications if n.severity == "warning"]
            assert len(warnings) == 1, [n.message for n in app._notifications]
            assert str(private_config) in warnings[0].message or "no-such-theme" in warnings[0].message
            assert "\n" not in warnings[0].message
            assert app.theme == "textual-dark"
    assert private_config.read_bytes() == text.encode("latin-1")  # not overwritten unasked


def test_settings_are_written_atomically_and_keep_keys_they_do_not_know(private_config: Path) -> None:
    private_config.parent.mkdir(parents=True)
    private_config.write_text('theme = "nord"\nfuture_key = "kept"\n')
    settings = Settings(default_path())
    assert settings.theme == "nord" and settings.error is None
    settings.remember_theme(LIGHT)
    again = Settings(default_path())
    assert again.theme == LIGHT
    assert 'future_key = "kept"' in private_config.read_text() or '"future_key" = "kept"' in private_config.read_text()
    assert [p.name for p in private_config.parent.iterdir()] == ["config.toml"]  # no temporary left


def test_an_unwritable_config_dir_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = Settings(blocker / "gradrepl" / "config.toml")
    settings.remember_theme(LIGHT)
    assert settings.error is not None and "\n" not in settings.error


def test_the_app_reads_no_config_unless_given_one(private_config: Path) -> None:
    private_config.parent.mkdir(parents=True)
    private_config.write_text(f'theme = "{LIGHT}"\n')
    app = GradReplApp(history=History(None), journal=Journal(None),
                      session_factory=RecordedSession.factory(load("completion")))
    assert app.settings.path is None


def test_light_theme_snapshot(snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch) -> None:
    """textual-light at 120x40 after `import torch; x = torch.ones(...)` and `x.add_(1)`:
    the transcript's source in dark-on-light colours (keywords, names and numbers all
    readable, none white on near-white), the explained RuntimeError, and the input holding
    `y = x * 2  # typed` in the same light colours."""
    monkeypatch.chdir(ROOT)
    app = app_with(Settings(None), "leaf_in_place_error")
    app.theme = LIGHT

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot)
        await run_cell(pilot, "import torch\nx = torch.ones(2, 2, requires_grad=True)")
        await run_cell(pilot, "x.add_(1)")
        code_input = app.query_one(CodeInput)
        code_input.load_text("y = x * 2  # typed")
        code_input.move_cursor(code_input.document.end)
        await pilot.pause()

    with kernel_free(app):
        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_a_cells_source_is_highlighted_once_per_style_and_width() -> None:
    """Each layout of the transcript renders and measures a cell again; a 4 MB cell would be
    highlighted again each time (minutes of "resuming" for one cell)."""
    from rich.console import Console
    from rich.syntax import Syntax

    made: list[str] = []
    dark = [True]

    def make(style: str) -> Syntax:
        made.append(style)
        return Syntax("x = 1\nprint(x)", "python", theme=style, background_color="default")

    source = ThemedSource(make, dark=lambda: dark[0])
    console = Console(width=60, record=True)
    for _ in range(3):
        console.print(source)
        console.measure(source)
    assert made == [DARK_SYNTAX, DARK_SYNTAX]  # drawn once, measured once
    dark[0] = False
    console.print(source)
    assert made[-1] == LIGHT_SYNTAX and len(made) == 3
    Console(width=30).print(source)
    assert len(made) == 4


@pytest.mark.parametrize("background", [(255, 255, 255), (216, 216, 216)], ids=["white", "cursor line"])
def test_every_token_colour_of_the_light_input_is_readable_on_white_and_on_the_cursors_line(
    background: tuple[int, int, int],
) -> None:
    """GitHub light's names (#e36209) and True/None (#7daf9c) were 2.5:1 and 1.7:1 on white;
    on the cursor's line (216 grey) numbers were 3.2:1."""
    from gradrepl.ui.contrast import TEXT_CONTRAST, contrast
    from gradrepl.ui.syntax import light_input_theme

    styles = light_input_theme().syntax_styles
    faint = {token: str(style.color) for token, style in styles.items()
             if style.color is not None and contrast(style.color.get_truecolor(), background) < TEXT_CONTRAST}
    assert not faint
    assert styles["variable"].color is not None


def test_a_colour_is_made_readable_on_light_and_dark_backgrounds() -> None:
    from gradrepl.ui.contrast import TEXT_CONTRAST, contrast, on, readable

    for background in [(255, 255, 255), (208, 208, 208), (36, 47, 56), (0, 0, 0)]:
        for color in [(255, 196, 115), (254, 166, 43), (78, 191, 113), (40, 40, 40), (250, 250, 250)]:
            assert contrast(readable(color, background), background) >= TEXT_CONTRAST, (color, background)
    assert readable((0, 0, 0), (255, 255, 255)) == (0, 0, 0)  # already readable: unchanged
    assert on((185, 60, 91)) == (255, 255, 255) and on((255, 196, 115)) == (0, 0, 0)


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light", "solarized-light", "catppuccin-latte", "nord", "gruvbox"])
async def test_every_text_drawn_is_readable_on_its_background_in_every_screen(theme: str) -> None:
    """Contrast of every text segment drawn (4.5:1): the resumed seed (the changed rows, the log's dim lines, the inspector's subtitle, the footer keys, the
    input's placeholder), a tensor's detail, its graph, a backward call's vᵀ·J view, help.
    solarized-light drew dim log text at 2.6:1 and 'accumulated' at 2.6:1; every theme drew
    '10 tensors, 1 changed' in the unfocused border colour (1.0 to 1.3:1)."""
    from gradrepl.ui.widgets.inspector import TensorInspector

    app = recorded_app("seed", script=SEED)
    app.theme = theme
    faint: dict[str, dict[str, float]] = {}
    with kernel_free(app):
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            faint["main"] = faint_text(app)
            inspector = app.query_one(TensorInspector)
            await pilot.press("f2")
            inspector.move_cursor(row=list(inspector.tensors).index("varibale"))
            await pilot.press("enter")
            await pilot.pause()
            faint["detail"] = faint_text(app)
            await pilot.press("escape", "g")
            await until_shown(pilot, lambda: getattr(app.screen, "graph", None) is not None, "the graph came")
            faint["graph"] = faint_text(app)
            await pilot.press("escape", "f3", "up", "up", "enter")
            await pilot.pause()
            faint["backward call"] = faint_text(app)
            await pilot.press("escape", "f1")
            await pilot.pause()
            faint["help"] = faint_text(app)
    assert {screen: texts for screen, texts in faint.items() if texts} == {}
