"""A session with KernelSession's interface that plays back a recording instead of a kernel.

The app's whole front-end path runs as with a kernel: the recorded IOPub messages go through
gradrepl.client.events.parse_iopub (comm ids, tensor deltas, records) and the output budget,
each cell ends with the CellFinished the real session gave, graphs come from the probe's
recorded replies. No process is started and nothing here imports torch or jupyter_client.

Cells must come in the recorded order with the recorded source: anything else raises
RecordingMismatch, so a test fails when the app sends the kernel something else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gradrepl.client.events import CellFinished, CellOutcome, Event, OutputBudget, OutputCut, ProbeState, parse_iopub
from gradrepl.protocol import Graph, graph_from_reply
from support.recording import CellStep, Recording, RestartStep

if TYPE_CHECKING:
    from gradrepl.client.process import KernelProcess
    from gradrepl.client.session import KernelSession
    from gradrepl.ui.runner import SessionFactory


class RecordingMismatch(AssertionError):
    """The app asked for something the recording does not hold."""


Pace = Callable[[], Awaitable[None]]


async def next_turn() -> None:
    await asyncio.sleep(0)


class RecordedSession:
    """`pace` is awaited before each event, as a kernel's messages come from a socket with
    time between them; the default only gives the event loop a turn."""

    def __init__(
        self,
        recording: Recording,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        pace: Pace = next_turn,
    ) -> None:
        self.recording = recording
        self.pace = pace
        self.cwd = cwd
        self.env = env
        self.output_limit = recording.output_limit
        self.process: KernelProcess | None = None  # never a process: that is the point
        self.executed: list[str] = []  # sources, in the order the app sent them
        self.interrupts = 0
        self.restarts = 0
        self._steps = list(recording.steps)
        self._next = 0
        self._last_cell: CellStep | None = None
        self._probe = ProbeState()
        self._started = False
        self._death: str | None = None

    @classmethod
    def factory(cls, recording: Recording, pace: Pace = next_turn) -> SessionFactory:
        """What GradReplApp(session_factory=...) takes; the app's runner calls it once."""

        def make(*, cwd: Path | None, env: dict[str, str] | None) -> KernelSession:
            return cast("KernelSession", cls(recording, cwd=cwd, env=env, pace=pace))

        return make

    @property
    def remaining(self) -> int:
        """Recorded steps the app has not asked for yet."""
        return len(self._steps) - self._next

    # ------------------------------------------------------------ lifecycle

    def launch(self) -> None:
        pass

    async def start(self, timeout: float = 0.0) -> None:
        self._started = True
        self._death = None

    @property
    def alive(self) -> bool:
        return self._started and self._death is None

    async def interrupt(self) -> None:
        self.interrupts += 1

    async def shutdown(self) -> None:
        self._started = False
        self._probe = ProbeState()

    async def restart(self) -> None:
        step = self._take()
        if not isinstance(step, RestartStep):
            raise RecordingMismatch(f"{self.recording.scenario}: the app restarted the kernel; the recording has a cell next")
        self.restarts += 1
        await self.shutdown()
        await self.start()
        self._last_cell = None

    # ------------------------------------------------------------ execution

    async def execute(
        self,
        code: str,
        *,
        origin: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Event]:
        if not self.alive:
            yield CellFinished("died", None, self._death or "the kernel is not running")
            return
        step = self._take()
        if not isinstance(step, CellStep):
            raise RecordingMismatch(f"{self.recording.scenario}: the app ran {code!r}; the recording restarts next")
        if step.source != code:
            raise RecordingMismatch(f"{self.recording.scenario}: the app ran {code!r}; the recording has {step.source!r}")
        line = origin.get("line") if origin else None
        if line != step.origin_line:
            raise RecordingMismatch(f"{self.recording.scenario}: {code!r} came from line {line}, recorded from {step.origin_line}")
        self.executed.append(code)
        self._last_cell = step
        budget = OutputBudget(self.output_limit)
        for message in step.iopub:
            event = parse_iopub(message.as_jupyter(parent_id=f"recorded-{self._next}"), self._probe)
            if event is not None:
                event = budget.take(event)
            if event is not None:
                await self.pace()
                yield event
        if budget.cut:
            yield OutputCut(budget.cut, budget.limit)
        if step.died is not None:
            self._death = step.died
        finished = step.finished
        yield CellFinished(finished["status"], finished["execution_count"], finished.get("reason") or "")

    async def run(self, code: str, **kwargs: Any) -> CellOutcome:
        outcome = CellOutcome()
        async for event in self.execute(code, **kwargs):
            outcome.events.append(event)
        return outcome

    async def complete(self, code: str, cursor_pos: int, timeout: float = 5.0) -> tuple[list[str], int, int] | None:
        """The recorded completion at this code and cursor, None if there is none (as the
        session gives None without a reply)."""
        for step in self.recording.cells[: self._cells_done()]:
            for completion in step.completions:
                if (completion.code, completion.cursor) == (code, cursor_pos):
                    content = completion.reply
                    if content.get("status") != "ok":
                        return None
                    matches = [str(m) for m in content.get("matches") or []]
                    return matches, int(content.get("cursor_start", cursor_pos)), int(content.get("cursor_end", cursor_pos))
        return None

    async def graph(self, name: str, timeout: float = 10.0) -> Graph:
        """The probe's recorded answer after the last cell run, as the session reads it."""
        if not self.alive:
            return graph_from_reply(name, {"error": self._death or "the kernel is not running"})
        if self._last_cell is None:
            return graph_from_reply(name, {"error": "no cell has run yet"})
        reply = self._last_cell.graphs.get(name)
        if reply is None:
            raise RecordingMismatch(f"{self.recording.scenario}: no graph of {name!r} was recorded after {self._last_cell.source!r}")
        return graph_from_reply(name, reply)

    # ------------------------------------------------------------ steps

    def _take(self) -> CellStep | RestartStep:
        if self._next >= len(self._steps):
            raise RecordingMismatch(f"{self.recording.scenario}: the app went on after the recording's last step")
        step = self._steps[self._next]
        self._next += 1
        return step

    def _cells_done(self) -> int:
        return sum(1 for s in self._steps[: self._next] if isinstance(s, CellStep))
