"""The kernel session against a real ipykernel process: events, namespace, faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gradrepl.client.events import CellFinished, Error, ProbeReport, Result, Stream
from gradrepl.client.session import KernelSession
from support.waiting import until

pytestmark = pytest.mark.kernel


@pytest.fixture
async def session() -> AsyncIterator[KernelSession]:
    s = KernelSession()
    await s.start()
    try:
        yield s
    finally:
        await s.shutdown()


async def test_events_of_a_cell_arrive_in_order(session: KernelSession) -> None:
    outcome = await session.run("print('hi')\n40 + 2")
    kinds = [type(e) for e in outcome.events]
    assert kinds == [Stream, Result, ProbeReport, CellFinished]
    assert outcome.stream_text("stdout") == "hi\n"
    assert outcome.result is not None and outcome.result.text == "42"
    assert outcome.finished == CellFinished("ok", 1)
    # Printed with nothing after it to flush it: the probe sends it before its report.
    outcome = await session.run("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert [type(e) for e in outcome.events] == [Stream, Stream, ProbeReport, CellFinished]


async def plain_jupyter_result(code: str) -> str:
    """The text/plain result of `code` in a stock ipykernel (no gradrepl probe)."""
    from jupyter_client.manager import start_new_async_kernel

    manager, client = await start_new_async_kernel(kernel_name="python3")
    results: list[str] = []

    def keep(msg: dict) -> None:
        if msg["header"]["msg_type"] == "execute_result":
            results.append(msg["content"]["data"]["text/plain"])

    try:
        await client.execute_interactive(code, output_hook=keep, timeout=60)
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
    return results[0]


async def test_user_namespace_is_the_same_as_a_plain_jupyter_kernel(session: KernelSession) -> None:
    code = "sorted(globals())"
    ours = (await session.run(code)).result
    assert ours is not None
    assert ours.text == await plain_jupyter_result(code)


async def test_probe_helpers_are_invisible_to_the_user(session: KernelSession) -> None:
    await session.run("import torch\nw = torch.ones(2, requires_grad=True)")
    who = await session.run("%who")
    assert who.stream_text("stdout").split() == ["torch", "w"]
    names = await session.run("print(json.dumps(sorted(k for k in globals() if not k.startswith('_'))))".replace("json.dumps", "__import__('json').dumps"))
    assert json.loads(names.stream_text("stdout")) == ["In", "Out", "exit", "get_ipython", "open", "quit", "torch", "w"]
    report = (await session.run("w")).report
    assert report is not None and [t.name for t in report.tensors] == ["w"]


async def test_a_failing_cell_still_gets_a_snapshot_and_mapped_frames(session: KernelSession) -> None:
    outcome = await session.run("a = 1\n\ndef f():\n    return 1 / 0\nf()", origin={"file": "demo.py", "line": 10})
    assert outcome.status == "error"
    assert outcome.error is not None and outcome.error.ename == "ZeroDivisionError"
    report = outcome.report
    assert report is not None
    in_script = [(f.name, f.script_line) for f in report.frames if f.in_script]
    assert in_script == [("<module>", 14), ("f", 13)]


async def test_a_syntax_error_points_at_its_line(session: KernelSession) -> None:
    outcome = await session.run("x = 1\ny = (\n", origin={"file": "demo.py", "line": 7})
    assert outcome.status == "error" and outcome.error is not None
    assert outcome.error.ename == "SyntaxError"
    assert outcome.report is not None
    assert [f.script_line for f in outcome.report.frames if f.in_script] == [8]


async def test_interrupt_stops_a_running_cell_and_keeps_names(session: KernelSession) -> None:
    await session.run("kept = 41")
    events = []
    cell = "import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.01)"
    async for event in session.execute(cell, timeout=30):
        events.append(event)
        if isinstance(event, Stream) and "looping" in event.text:  # the loop runs now
            await session.interrupt()
    finished = events[-1]
    assert isinstance(finished, CellFinished) and finished.status == "error"
    errors = [e for e in events if isinstance(e, Error)]
    assert [e.ename for e in errors] == ["KeyboardInterrupt"]
    after = await session.run("kept + 1")
    assert after.result is not None and after.result.text == "42"


async def test_cell_timeout_interrupts_and_reports_timeout(session: KernelSession) -> None:
    outcome = await session.run("while True:\n    pass", timeout=1.0)
    assert outcome.status == "timeout"
    assert outcome.finished is not None and "interrupted after 1 s" in outcome.finished.reason
    after = await session.run("'still here'")
    assert after.result is not None and after.result.text == "'still here'"


async def test_kernel_death_is_a_died_status_not_a_hang(session: KernelSession) -> None:
    outcome = await asyncio.wait_for(session.run("import os\nos._exit(3)"), 20)
    assert outcome.status == "died"
    assert outcome.finished is not None and outcome.finished.reason == "the kernel exited with code 3"
    again = await session.run("1")
    assert again.status == "died"


async def test_restart_gives_a_fresh_namespace(session: KernelSession) -> None:
    await session.run("gone = 1")
    await session.restart()
    outcome = await session.run("'gone' in globals()")
    assert outcome.result is not None and outcome.result.text == "False"
    assert outcome.finished is not None and outcome.finished.execution_count == 1


async def test_shutdown_removes_the_private_runtime_directory() -> None:
    s = KernelSession()
    await s.start()
    process = s.process
    assert process is not None
    assert (process.runtime_dir.stat().st_mode & 0o777) == 0o700
    assert (process.connection_file.stat().st_mode & 0o777) == 0o600
    await s.shutdown()
    assert not process.runtime_dir.exists()
    assert not process.is_alive()


async def test_shutdown_runs_the_users_atexit_callbacks_and_exits_cleanly(tmp_path) -> None:
    marker = tmp_path / "atexit.txt"
    s = KernelSession()
    await s.start()
    process = s.process
    assert process is not None
    await s.run(f"import atexit\natexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))")
    await s.shutdown()
    assert marker.read_text() == "ran"
    assert process.process.returncode == 0


async def test_the_user_can_still_import_debugpy(session: KernelSession) -> None:
    outcome = await session.run("import debugpy\ndebugpy.__name__")
    assert outcome.result is not None and outcome.result.text == "'debugpy'"


async def test_completion_comes_from_the_live_namespace(session: KernelSession) -> None:
    await session.run("varibale_one = 1\nvaribale_two = 2")
    completed = await session.complete("vari", 4)
    assert completed is not None
    matches, start, end = completed
    assert {"varibale_one", "varibale_two"} <= set(matches)
    assert (start, end) == (0, 4)


async def test_a_shutdown_cancelled_while_the_kernel_is_stuck_exiting_still_kills_it(tmp_path: Path) -> None:
    s = KernelSession()
    await s.start()
    process = s.process
    assert process is not None
    exiting = tmp_path / "exiting"
    hang = f"import atexit, pathlib, time\natexit.register(lambda: (pathlib.Path({str(exiting)!r}).touch(), time.sleep(60)))"
    await s.run(hang)  # its exit hangs
    stopping = asyncio.ensure_future(s.shutdown())
    await until(exiting.exists, "the kernel reaching its hanging exit")
    stopping.cancel()  # as when an app is torn down in the middle of quitting
    with contextlib.suppress(asyncio.CancelledError):
        await stopping
    assert not process.is_alive()
    assert not process.runtime_dir.exists()


async def plain_jupyter_traceback(code: str) -> list[str]:
    """The traceback lines a stock ipykernel (no gradrepl probe) sends for `code`'s error."""
    from jupyter_client.manager import start_new_async_kernel

    manager, client = await start_new_async_kernel(kernel_name="python3")
    lines: list[str] = []

    def keep(msg: dict) -> None:
        if msg["header"]["msg_type"] == "error":
            lines.extend(msg["content"]["traceback"])

    try:
        await client.execute_interactive(code, output_hook=keep, timeout=60)
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)
    return lines


def frame_heads(traceback: list[str]) -> list[str]:
    """The "File ..., in NAME" head of each frame entry (IPython's format), colour codes removed."""
    import re

    plain = [re.sub(r"\x1b\[[0-9;]*m", "", entry) for entry in traceback]
    return [entry.split("\n", 1)[0] for entry in plain if entry.startswith(("File ", "Cell In", "    [... skipping"))]


@pytest.mark.parametrize("code", [
    "import torch\nx = torch.ones(2, requires_grad=True)\n(x * 2).backward()",
    "import torch\nx = torch.ones(2, requires_grad=True)\ntorch.autograd.grad(x * 2, x)",
    "import torch\nx = torch.ones(2, requires_grad=True)\nh = x.register_hook(lambda g: 1 / 0)\n(x * 2).sum().backward()",
])
async def test_a_backward_error_shows_the_frames_jupyter_shows(session: KernelSession, code: str) -> None:
    """The tracer wraps torch.autograd.backward and grad; its frames are not in the traceback,
    nor IPython's "[... skipping hidden 2 frame]" line they left when only marked hidden."""
    outcome = await session.run(code)
    error = next(e for e in outcome.events if isinstance(e, Error))
    ours = frame_heads(list(error.traceback))
    assert not any("gradrepl" in head or "skipping hidden" in head for head in ours), ours
    assert ours == frame_heads(await plain_jupyter_traceback(code))
