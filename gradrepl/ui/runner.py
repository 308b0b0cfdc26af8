"""Runs the session's cells in the kernel, one at a time, and tells the app what happens.

The kernel process is launched before Textual has even drawn (see cli.py); jupyter_client
is imported off the event loop once the first frame is up, so the UI never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from textual.message_pump import MessagePump

from gradrepl.client.kernel_errors import KernelError
from gradrepl.client.process import KernelProcess, launch_kernel
from gradrepl.protocol import Graph
from gradrepl.ui.messages import CellDone, CellOutput, CellStarted, KernelLink, KernelNotes, KernelStateChanged
from gradrepl.ui.state.worksheet import SessionCell

if TYPE_CHECKING:
    from gradrepl.client.session import KernelSession


class SessionFactory(Protocol):
    """Makes the session the runner drives instead of a KernelSession over a kernel process
    of its own (tests pass one that replays recorded kernel messages: no process starts)."""

    def __call__(self, *, cwd: Path | None, env: dict[str, str] | None) -> KernelSession: ...


STOPPED_BY_RESTART = "stopped by the kernel restart"
RESTART_GRACE = 2.0  # seconds a running cell gets to stop before its kernel is killed


class KernelRunner:
    def __init__(
        self,
        target: MessagePump,
        *,
        cwd: Path | None = None,
        process: KernelProcess | None = None,
        cell_timeout: float | None = None,
        origin_file: str | None = None,
        env: dict[str, str] | None = None,
        session_factory: SessionFactory | None = None,
    ) -> None:
        self.target = target
        self.session_factory = session_factory
        self.cwd = cwd
        self.env = env  # the kernel's extra environment (cli._kernel_env), for every kernel it starts
        self.cell_timeout = cell_timeout
        self.origin_file = origin_file
        self.state = "starting"
        self.session: KernelSession | None = None
        self._process = process
        self._queue: asyncio.Queue[SessionCell] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._lock = asyncio.Lock()
        self.running: SessionCell | None = None

    @property
    def kernel_process(self) -> KernelProcess | None:
        """The kernel process running now (a restart replaces it)."""
        return self.session.process if self.session is not None else self._process

    def launch(self) -> None:
        """Start the kernel process (cheap: stdlib only) so it loads while the UI draws."""
        if self._process is None and self.session_factory is None:
            with contextlib.suppress(KernelError):  # start() tries again, and says why
                self._process = launch_kernel(cwd=self.cwd, extra_env=self.env)

    def _set_state(self, state: str, reason: str = "") -> None:
        self.state = state
        self.target.post_message(KernelStateChanged(state, reason))

    async def start(self) -> None:
        """Connect to the kernel and then run queued cells until cancelled."""
        self.launch()
        self._set_state("starting")
        module = await asyncio.to_thread(importlib.import_module, "gradrepl.client.session")
        session: KernelSession
        if self.session_factory is not None:
            session = self.session_factory(cwd=self.cwd, env=self.env)
        else:
            session = module.KernelSession(cwd=self.cwd, env=self.env)
            session.process, self._process = self._process, None
            session.say_notes = False
        server = getattr(session, "server", None)  # a recorded session (tests) has none
        if server is not None:
            self._tell_link(session, server.where)
        self.session = session
        try:
            await session.start()
        except module.KernelError as err:
            self._set_state("dead", str(err).removeprefix("gradrepl: "))
            return
        self._ready.set()
        self._tell_notes(session)
        await self._serve()

    def _tell_notes(self, session: KernelSession) -> None:
        if getattr(session, "start_notes", None):  # a recorded session (tests) has none
            self.target.post_message(KernelNotes(list(session.start_notes)))

    def _tell_link(self, session: KernelSession, where: str) -> None:
        """The status line shows the server, and each round trip to it as it is measured."""
        self.target.post_message(KernelLink(where))

        def measured(seconds: float) -> None:
            self.target.post_message(KernelLink(where, seconds * 1e3))

        session.on_latency = measured

    async def _next_cell(self) -> SessionCell:
        """The next cell submitted. A kernel that dies meanwhile (killed, or culled by its
        server) says so at once, not when the next cell finds it gone."""
        waiting = asyncio.ensure_future(self._queue.get())
        ended = self.session.ended() if self.session is not None and hasattr(self.session, "ended") else None
        if ended is not None and not ended.done() and self.state != "dead":
            try:
                await asyncio.wait({waiting, ended}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                waiting.cancel()
                raise
            if not waiting.done() and self.state not in ("restarting", "dead") and self.session is not None:
                self._set_state("dead", self.session.death_reason())
        return await waiting

    async def _serve(self) -> None:
        while True:
            if self._queue.empty():
                self._idle.set()
                if self.state != "dead":
                    self._set_state("idle")
            cell = await self._next_cell()
            self._idle.clear()
            if cell.state == "cancelled":
                continue
            if self.state == "dead":
                cell.state = "cancelled"
                self.target.post_message(CellDone(cell, time.perf_counter()))
                continue
            await self._run(cell)

    async def _run(self, cell: SessionCell) -> None:
        from gradrepl.client.events import CellFinished

        assert self.session is not None
        if not cell.source.strip():  # as Jupyter: a blank cell is not run and gets no In [n]
            cell.state = "ok"
            self.target.post_message(CellDone(cell, time.perf_counter()))
            return
        self._set_state("busy")
        self.running = cell
        cell.state = "running"
        self.target.post_message(CellStarted(cell))
        origin = {"file": self.origin_file, "line": cell.script_line} if cell.script_line and self.origin_file else None
        async with self._lock:
            async for event in self.session.execute(cell.source, origin=origin, timeout=self.cell_timeout):
                if isinstance(event, CellFinished):
                    cell.finish(event)
                else:
                    cell.events.append(event)
                    self.target.post_message(CellOutput(cell, event))
        self.running = None
        if cell.state == "died" and self.state == "restarting":
            cell.reason = STOPPED_BY_RESTART
        self.target.post_message(CellDone(cell, time.perf_counter()))
        if cell.state == "died" and self.state != "restarting":
            self._set_state("dead", cell.reason)

    def submit(self, cell: SessionCell) -> None:
        self._idle.clear()
        self._queue.put_nowait(cell)

    def cancel_queued(self) -> list[SessionCell]:
        cancelled = []
        while not self._queue.empty():
            cell = self._queue.get_nowait()
            cell.state = "cancelled"
            cancelled.append(cell)
        return cancelled


    async def until_idle(self) -> None:
        """Wait until the kernel is ready and every submitted cell has finished."""
        await self._idle.wait()

    async def interrupt(self) -> None:
        if self.session is not None:
            await self.session.interrupt()

    async def restart(self) -> None:
        """A fresh kernel. A running cell is interrupted, and if it will not stop within
        RESTART_GRACE seconds the old kernel is killed (the cell then ends as "died")."""
        if self.session is None:
            return
        self.cancel_queued()
        self._set_state("restarting")
        if self.running is not None:
            await self.session.interrupt()
        try:
            await asyncio.wait_for(self._lock.acquire(), RESTART_GRACE)
        except asyncio.TimeoutError:
            process = self.session.process
            if process is not None:
                process.kill()
            await self._lock.acquire()
        try:
            await self.session.restart()
        except Exception as err:  # KernelError: one line
            self._set_state("dead", str(err).removeprefix("gradrepl: "))
            return
        finally:
            self._lock.release()
        self._tell_notes(self.session)
        self._set_state("idle")

    async def complete(self, code: str, cursor: int) -> tuple[list[str], int, int] | None:
        """Jupyter completion; None while the kernel is busy or not ready."""
        session = self.session
        if session is None or self.running is not None or self._lock.locked() or not self._ready.is_set():
            return None
        async with self._lock:
            return await session.complete(code, cursor)

    async def graph(self, name: str) -> Graph:
        """The autograd graph of a named tensor, asked of the probe once the running cell ends."""
        await self._ready.wait()
        session = self.session
        if session is None or self.state == "dead":
            return Graph.failed(name, "the kernel is not running")
        async with self._lock:
            return await session.graph(name)

    async def set_nan_check(self, on: bool) -> str | None:
        """--nan-check on or off (from the next cell, and after a restart); None, or why not."""
        await self._ready.wait()
        session = self.session
        if session is None or self.state == "dead":
            return "the kernel is not running"
        async with self._lock:
            return await session.set_nan_check(on)

    async def shutdown(self) -> None:
        if self.session is not None:
            await self.session.shutdown()
        elif self._process is not None:
            self._process.kill()
            self._process.cleanup()
            self._process = None
