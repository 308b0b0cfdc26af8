"""The app on a recorded session, and the checks that it ran with no kernel and no torch."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from textual.pilot import Pilot

from gradrepl.cells import read_script
from gradrepl.ui.app import GradReplApp
from gradrepl.ui.state.history import History
from gradrepl.ui.state.journal import Journal
from gradrepl.ui.widgets.code_input import CodeInput
from support.recorded_session import RecordedSession
from support.recording import Recording, load
from support.screens import layout_settled
from support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed_autograd.py"  # where the seed's recordings were made from
HEAVY = ("torch", "jupyter_client", "ipykernel", "zmq")  # what a kernel-free UI never loads


async def ui_caught_up(app: GradReplApp) -> None:
    """Wait until the app has handled what it got so far and drawn it, as it has between a
    real kernel's messages. Without this the replay's bursts decide how far the transcript
    follows its output (it checks whether it is at its end before new lines are laid out),
    and snapshots change from run to run."""
    drawn = asyncio.Event()
    app.call_after_refresh(drawn.set)
    await drawn.wait()


def recorded_app(name: str | None, *, script: Path | None = None, history: History | None = None) -> GradReplApp:
    """The app whose runner plays tests/data/reports/NAME.json (None: an empty recording);
    `script` is resumed as `gradrepl SCRIPT` would, its cells checked against the recording."""
    recording = load(name) if name is not None else Recording("empty")
    app = GradReplApp(
        read_script(script) if script is not None else None,
        history=history if history is not None else History(None),
        journal=Journal(None),
        cwd=script.parent if script is not None else None,
        stable=True,
        session_factory=RecordedSession.factory(recording, pace=lambda: ui_caught_up(app)),
    )
    return app


def session_of(app: GradReplApp) -> RecordedSession:
    session = app.runner.session
    assert isinstance(session, RecordedSession), f"the app's session is {session!r}, not a recorded one"
    return session


async def until_idle(app: GradReplApp) -> None:
    """app.until_idle(), but a broken app fails the test instead of hanging it, at once if
    the app is exiting (an exception in it)."""
    idle = asyncio.ensure_future(app.until_idle())
    try:
        await until(lambda: idle.done() or app.return_code is not None, "the app's cells finished")
        if not idle.done():
            raise AssertionError("the app stopped before its cells were done (an error in it?)")
    finally:
        idle.cancel()


async def settled(pilot: Pilot) -> None:
    """Every submitted cell done and the panes drawn (they scroll after the refresh)."""
    app = pilot.app
    assert isinstance(app, GradReplApp)
    await until_idle(app)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await layout_settled(pilot)


async def run_cell(pilot: Pilot, source: str) -> None:
    """Type `source` into the input and run it with Ctrl+R, as a user would."""
    pilot.app.query_one(CodeInput).load_text(source)
    await pilot.press("ctrl+r")
    await settled(pilot)


async def until_shown(pilot: Pilot, done: Callable[[], bool], what: str) -> None:
    """Let the app run until `done()` (a screen's data has come, say), then let it draw."""
    await until(done, what)
    await pilot.pause()


async def workers_done(pilot: Pilot, group: str) -> None:
    for worker in [w for w in pilot.app.workers if w.group == group]:
        await worker.wait()
    await pilot.pause()


def running(*cells: str) -> Callable[[Pilot], Awaitable[None]]:
    async def run(pilot: Pilot) -> None:
        await settled(pilot)
        for source in cells:
            await run_cell(pilot, source)

    return run


def heavy_modules() -> set[str]:
    return {m for m in sys.modules if m.split(".")[0] in HEAVY}


@contextmanager
def kernel_free(app: GradReplApp) -> Iterator[None]:
    """Fails unless the app ran on its recorded session, started no kernel process and
    imported none of torch, jupyter_client, ipykernel or zmq.

    Other tests in the same pytest process may have imported torch already, so torch is
    also made unimportable while this runs (`import torch` raises), and what is checked
    is that nothing heavy was loaded meanwhile."""
    before = heavy_modules()
    blocked = ("torch", "jupyter_client", "ipykernel")
    saved: dict[str, ModuleType] = {name: sys.modules[name] for name in blocked if name in sys.modules}
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # None in sys.modules: `import name` raises
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
        sys.modules.update(saved)
    assert heavy_modules() - before == set(), f"loaded: {sorted(heavy_modules() - before)}"
    assert "torch" not in sys.modules or "torch" in before
    session_of(app)
    assert app.runner.kernel_process is None
