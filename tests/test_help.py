"""F1's help against the keys the app really binds, and its fit at 80x24."""

from __future__ import annotations

import itertools

import pytest
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Markdown

from gradrepl.ui.app import GradReplApp
from gradrepl.ui.screens.autograd_graph import AutogradGraphScreen
from gradrepl.ui.screens.backward_event import BackwardEventScreen
from gradrepl.ui.screens.help import HELP, HelpScreen
from gradrepl.ui.screens.tensor_detail import TensorDetailScreen
from gradrepl.ui.widgets.backward_log import BackwardEntry, BackwardLog
from gradrepl.ui.widgets.code_input import CodeInput
from gradrepl.ui.widgets.inspector import TensorInspector
from gradrepl.ui.widgets.output_block import OutputBlock
from gradrepl.ui.widgets.transcript import Transcript
from support.recorded_app import kernel_free, recorded_app, settled
from support.waiting import until

# The dialogs (confirm quit/restart, kernel died, save as, the recover offer) show their keys on their buttons.
HELPED = (GradReplApp, CodeInput, Transcript, OutputBlock, TensorInspector, BackwardLog, BackwardEntry,
          TensorDetailScreen, AutogradGraphScreen, BackwardEventScreen, HelpScreen)
NAMES = {"pageup": "PageUp", "pagedown": "PageDown"}


def shown(key: str) -> str:
    """A Textual key as help writes it: ctrl+l -> Ctrl+L, pageup -> PageUp, g -> **g**."""
    if len(key) == 1:
        return f"**{key}**"
    return "+".join(NAMES.get(part, part.upper() if len(part) == 1 else part.capitalize()) for part in key.split("+"))


def bound_keys() -> set[str]:
    keys: set[str] = set()
    for cls in HELPED:
        for binding in cls.__dict__.get("BINDINGS", []):
            assert isinstance(binding, Binding), binding
            keys.update(k.strip() for k in binding.key.split(","))
    return keys


def test_shown_keys_read_as_help_writes_them() -> None:
    assert [shown(k) for k in ("ctrl+l", "pageup", "alt+enter", "f8", "g", "shift+tab")] == \
        ["Ctrl+L", "PageUp", "Alt+Enter", "F8", "**g**", "Shift+Tab"]


@pytest.mark.parametrize("key", sorted(bound_keys()))
def test_help_names_every_bound_key(key: str) -> None:
    assert shown(key) in HELP, f"{key} is bound but F1's help does not mention {shown(key)}"


def test_help_names_the_inspectors_highlight() -> None:
    from gradrepl.ui.widgets.inspector import CHANGED

    assert "yellow" in CHANGED and "highlighted" in HELP


async def test_help_fits_at_80x24_and_scrolls_to_its_end() -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(80, 24)) as pilot:
            await settled(pilot)
            await pilot.press("f1")
            await until(lambda: isinstance(app.screen, HelpScreen), "the help screen")
            await pilot.pause()
            scroll = app.screen.query_one(VerticalScroll)
            markdown = app.screen.query_one(Markdown)
            assert scroll.outer_size.width <= 80 and scroll.outer_size.height <= 24
            assert scroll.max_scroll_x == 0, "help is wider than its box"
            assert markdown.outer_size.width <= scroll.content_size.width
            scroll.scroll_end(animate=False)
            await pilot.pause()
            assert scroll.scroll_y == scroll.max_scroll_y
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)


# ---------------------------------------------------------------- footer


def footer_keys(app: GradReplApp) -> dict[str, tuple[int, int]]:
    from textual.widgets._footer import FooterKey

    return {key.key: (key.region.x, key.region.right) for key in app.screen.query(FooterKey) if key.display and key.region}


@pytest.mark.parametrize("width", [80, 120])
async def test_the_footer_shows_f8_restart_and_fits(width: int) -> None:
    app = recorded_app(None)
    with kernel_free(app):
        async with app.run_test(size=(width, 24)) as pilot:
            await settled(pilot)
            keys = footer_keys(app)
            assert {"ctrl+c", "ctrl+s", "f1", "f8", "ctrl+q"} <= set(keys), keys
            assert all(right <= width for _, right in keys.values()), keys
            spans = sorted(keys.values())
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), f"footer keys overlap: {keys}"
            assert ("f2" in keys) == (width >= 100), "the Panes group shows only where it fits"


def test_help_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """F1 at 80x24 over an empty session: a bordered box with the title 'gradrepl', the intro
    ('Typing anywhere outside a dialog goes to the input') and the top of the code input's key
    table (Enter, Ctrl+J or Alt+Enter, Ctrl+R), nothing cut at the right; the footer reads
    'esc Close'."""

    async def open_help(pilot) -> None:  # type: ignore[no-untyped-def]
        await settled(pilot)
        await pilot.press("f1")
        await until(lambda: isinstance(pilot.app.screen, HelpScreen), "the help screen")
        await pilot.pause()

    app = recorded_app(None)
    with kernel_free(app):
        assert snap_compare(app, terminal_size=(80, 24), run_before=open_help)


def test_the_readme_names_every_bound_key() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    missing = [k for k in sorted(bound_keys()) if shown(k) not in readme and f"`{k}`" not in readme]
    assert not missing, f"README.md does not mention {missing}"
