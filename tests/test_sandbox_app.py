"""The app's sandbox toggle (a palette entry): on, the kernel restarts confined and the status
line says so; off, it restarts free. Against real kernels."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gradrepl.protocol import MEMORY_LIMIT_ENV, SANDBOX_ENV, SandboxRequest
from gradrepl.ui.app import GradReplApp
from gradrepl.ui.state.history import History
from gradrepl.ui.widgets.status_line import StatusLine
from test_app import SIZE, run_cell, workers_done
from test_sandbox import REFUSED, ROOT

pytestmark = pytest.mark.kernel


async def test_the_toggle_restarts_the_kernel_confined_then_free(tmp_path: Path) -> None:
    lesson = tmp_path / "lesson"
    lesson.mkdir()
    entries = {SANDBOX_ENV: SandboxRequest("best-effort" if ROOT else "strict", (str(lesson),)).to_json(),
               MEMORY_LIMIT_ENV: str(4 << 30)}
    app = GradReplApp(None, history=History(tmp_path / "history.jsonl"), cwd=lesson, stable=True, sandbox_entries=entries)
    outside = tmp_path / f"outside-{uuid.uuid4().hex}.txt"
    async with app.run_test(size=SIZE) as pilot:
        await app.until_idle()
        status = app.query_one(StatusLine)
        assert not status.sandboxed and "sandboxed" not in str(status.render())
        assert "Sandbox: turn on" in [c.title for c in app.get_system_commands(app.screen)]
        app.action_toggle_sandbox()  # no named tensors: restarts at once
        await workers_done(app, "kernel-control")
        await app.until_idle()
        await pilot.pause()
        assert status.sandboxed and " sandboxed " in str(status.render())
        await run_cell(app, pilot, f"open({str(outside)!r}, 'w')")
        cell = app.worksheet.cells[-1]
        assert cell.state == "error" and any(getattr(e, "text", "").startswith(REFUSED) for e in cell.events)
        assert not outside.exists()
        assert "Sandbox: turn off" in [c.title for c in app.get_system_commands(app.screen)]
        app.action_toggle_sandbox()
        await workers_done(app, "kernel-control")
        await app.until_idle()
        await pilot.pause()
        assert not status.sandboxed
        await run_cell(app, pilot, f"open({str(outside)!r}, 'w').write('free')")
        assert app.worksheet.cells[-1].state == "ok" and outside.read_text() == "free"
        assert SANDBOX_ENV not in (app.runner.env or {}) and MEMORY_LIMIT_ENV not in (app.runner.env or {})


async def test_without_a_kernel_of_its_own_there_is_no_toggle(tmp_path: Path) -> None:
    app = GradReplApp(None, history=History(tmp_path / "history.jsonl"), cwd=tmp_path, stable=True, sandbox_entries=None)
    async with app.run_test(size=SIZE) as pilot:
        await app.until_idle()
        assert not any(c.title.startswith("Sandbox") for c in app.get_system_commands(app.screen))
        app.action_toggle_sandbox()
        await pilot.pause()
        assert not app.sandboxed
