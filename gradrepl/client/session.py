"""An async session with one kernel: start, execute (events as they come), interrupt,
restart, shutdown.

The protocol rules (as jupyter_console keeps them): a request's output is every IOPub
message whose parent is that request, up to its `status: idle`; the execute_reply on the
shell channel then says how it ended. Waiting is always on the sockets or on the
kernel process itself (a thread blocked in wait()), never on a polling loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from gradrepl.client.attaching import HEARTBEAT_SECONDS, READY_TIMEOUT, REPLY_GRACE, AttachedKernel
from gradrepl.client.cpu_watch import CpuWatch
from gradrepl.client.events import CellFinished, CellOutcome, Event, OutputBudget, OutputCut, ProbeState, parse_iopub
from gradrepl.client.existing import Existing
from gradrepl.client.kernel_errors import KernelDied, KernelError
from gradrepl.client.process import KernelProcess, launch_kernel
from gradrepl.client.remote import Server, ServerError, ServerLink
from gradrepl.protocol import (
    MEMORY_LIMIT_ENV,
    NAN_CHECK_ENV,
    NAN_CHECK_REQUEST,
    ORIGIN_KEY,
    SANDBOX_PARTLY,
    Graph,
    graph_from_reply,
    graph_request,
    sandbox_request,
    size_text,
)

OUTPUT_LIMIT = 1_000_000  # characters of text output a cell keeps; the rest is counted
INTERRUPT_GRACE = 5.0
_SAID: set[str] = set()
_HANDLER_FAILED = "Exception in message handler:"  # what ipykernel logs when a request fails in its own code


def above_hard_limit(limit: int) -> str | None:
    """What is wrong with a --memory-limit of `limit` bytes that the kernel, which inherits
    this process's limits, could never set (None if it can)."""
    try:
        import resource
    except ImportError:  # not a POSIX system: there is no hard limit to be above
        return None
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or limit <= hard:
        return None
    return f"{size_text(limit)} is above this system's hard limit of {size_text(hard)} (ulimit -Hv)"


class KernelSession(AttachedKernel):
    def __init__(self, *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 attach: Existing | Server | None = None) -> None:
        self.cwd = cwd
        self.env = env
        # A kernel gradrepl did not launch: one running (attached to, never killed), or on a
        # Jupyter Server or gateway (through its REST and websocket API).
        self.existing = attach if isinstance(attach, Existing) else None
        self.server = attach if isinstance(attach, Server) else None
        self.on_latency: Callable[[float], None] | None = None  # a server kernel: each REST round trip, in seconds
        self.output_limit = OUTPUT_LIMIT
        self.process: KernelProcess | None = None
        self.client: Any = None
        self._death: asyncio.Future[Any] | None = None  # its result: an exit code, or (attached) a reason
        self._probe = ProbeState()
        self.stuck = False  # a cell did not stop when interrupted: the kernel runs it still
        self._needs_probe = False  # an attached kernel that restarted: its new process has no probe yet
        self._kernel_identity: str | None = None  # the session id of the kernel process's messages
        self.start_notes: list[str] = []  # what the kernel said as it started: what --sandbox=best-effort could not confine
        self.say_notes = True  # on stderr, once per note and process (replay, check); the app shows them itself

    # ------------------------------------------------------------ lifecycle

    def launch(self) -> None:
        """Start the kernel process now, before anything heavy is imported; start() connects."""
        if self.process is None and not self.attached:
            self.process = launch_kernel(cwd=self.cwd, extra_env=self.env)

    async def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Launch the kernel if need be and wait until it answers; a started session stays as it is."""
        if self.client is not None:
            return
        if self.existing is not None:
            await self._attach(self.existing, timeout)
            return
        if self.server is not None:
            await self._attach_server(self.server, timeout)
            return
        self.launch()
        assert self.process is not None
        from jupyter_client.asynchronous import AsyncKernelClient

        client = AsyncKernelClient()
        client.load_connection_info(self.process.connection_info)  # type: ignore[arg-type]  # a plain dict of the same keys
        client.start_channels(hb=False)
        self.client = client
        self._death = asyncio.get_running_loop().run_in_executor(None, self.process.process.wait)
        try:
            await asyncio.wait_for(self._until_ready(), timeout)
        except asyncio.TimeoutError:
            await self.shutdown()
            raise KernelError(f"gradrepl: the kernel did not start within {timeout:.0f} s") from None
        except KernelDied:
            log = self.process.log_tail().strip().splitlines()
            await self.shutdown()
            last = log[-1].strip() if log else "no message"
            if last.startswith("gradrepl: "):  # the kernel said why itself (--sandbox)
                raise KernelError(last) from None
            limit = (self.env or {}).get(MEMORY_LIMIT_ENV)
            above = above_hard_limit(int(limit)) if limit else None
            if above:
                raise KernelError(f"gradrepl: the kernel exited while starting: --memory-limit {above}") from None
            hint = f": --memory-limit {size_text(int(limit))} is likely too small for it" if limit else ""
            raise KernelError(f"gradrepl: the kernel exited while starting ({last}){hint}") from None
        self.start_notes = [line for line in self.process.log_tail().splitlines() if line.startswith(SANDBOX_PARTLY)]
        if self.say_notes:
            for note in self.start_notes:
                if note not in _SAID:
                    _SAID.add(note)
                    print(note, file=sys.stderr, flush=True)

    async def _until_ready(self) -> None:
        while True:
            request = self.client.session.msg("kernel_info_request")
            self.client.shell_channel.send(request)
            reply = await self._next_reply(request["header"]["msg_id"], timeout=1.0)
            if reply is None:
                continue
            self._kernel_identity = reply["header"].get("session")
            # IOPub is a subscription: it is live once any message (ipykernel's
            # iopub_welcome, or the status of our request) has come through.
            if await self._next_message(self.client.get_iopub_msg(), timeout=1.0) is not None:
                return

    async def _next_message(self, getter: Any, timeout: float | None) -> dict[str, Any] | None:
        """The next message from a channel, or None at the timeout; KernelDied if it dies first."""
        assert self._death is not None
        get = asyncio.ensure_future(getter)
        done, _ = await asyncio.wait({get, self._death}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            try:
                return get.result()
            except Exception:  # queue.Empty from the client's own timeout
                return None
        get.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await get
        if self._death in done:
            raise KernelDied
        return None

    async def _next_reply(self, msg_id: str, timeout: float) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            msg = await self._next_message(self.client.get_shell_msg(), remaining)
            if msg is None:
                return None
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

    async def interrupt(self) -> None:
        if self.process is not None:
            self.process.interrupt()
        elif self.server is not None and isinstance(self.client, ServerLink):  # the server knows how
            with contextlib.suppress(ServerError):
                await self.client.interrupt()
        elif self.existing is not None and self.client is not None:  # not ours to signal: ask it
            self.client.control_channel.send(self.client.session.msg("interrupt_request", {}))

    async def shutdown(self, *, now: bool = False) -> None:
        """Ask the kernel to exit, and kill it after 2 s; `now` (or a kernel still running a
        cell that did not stop, which could not exit) kills it at once."""
        if self.existing is not None:  # left running, unless asked
            if self.existing.shutdown_on_exit and self.client is not None and self.alive:
                with contextlib.suppress(Exception):
                    self.client.shutdown()
            self._detach()
            self.stuck = False
            return
        if self.server is not None:
            link = self.client
            if isinstance(link, ServerLink) and self.server.ends_with_session:
                await link.delete()
            self._detach()
            self.stuck = False
            return
        process, self.process = self.process, None
        client, self.client = self.client, None
        if process is None:
            return
        try:
            if client is not None and process.is_alive() and not (now or self.stuck):
                with contextlib.suppress(Exception):
                    client.shutdown()
                await asyncio.get_running_loop().run_in_executor(None, process.wait, 2.0)
        finally:
            # Also when the wait is cancelled (an app torn down mid-quit): the kernel must
            # not outlive its session, whatever state its own exit is stuck in.
            if process.is_alive():
                process.kill()
            if client is not None:
                with contextlib.suppress(Exception):
                    client.stop_channels()
            process.cleanup()
            self._probe = ProbeState()
            self.stuck = False

    async def restart(self) -> None:
        if self.server is not None and isinstance(self.client, ServerLink) and self.alive:
            try:  # the server owns the kernel: it restarts it, and the probe goes in again
                await self.client.restart()
            except ServerError as err:
                raise KernelError(str(err)) from None
            self._probe = ProbeState()
            await self._ready_with_probe(f"the kernel on {self.server.url} does not answer after its restart")
            return
        if self.existing is not None:  # not ours to restart: attached to again, its state kept
            self._detach()
            await self.start()
            return
        await self.shutdown()
        await self.start()

    def ended(self) -> asyncio.Future[Any] | None:
        """Done once the kernel has died (or, attached, is lost); None before it started."""
        return self._death

    def death_reason(self) -> str:
        """Why the kernel is gone, in a line."""
        return self._death_reason()

    @property
    def attached(self) -> bool:
        """Whether the kernel is one gradrepl did not launch (--existing, --server)."""
        return self.existing is not None or self.server is not None

    @property
    def alive(self) -> bool:
        if self.attached:
            return self.client is not None and self._death is not None and not self._death.done()
        return self.process is not None and self.process.is_alive()

    # ------------------------------------------------------------ execution

    async def execute(
        self,
        code: str,
        *,
        origin: dict[str, Any] | None = None,
        timeout: float | None = None,
        store_history: bool = True,
    ) -> AsyncIterator[Event]:
        """Run one cell; yield its events as they arrive, ending with CellFinished.

        `origin` ({"file": ..., "line": ...}) lets the probe map error lines to the file.
        `timeout` interrupts the cell after that many seconds (status "timeout").
        Without `store_history` the cell takes no execution count (set-up the user did not write).
        """
        if self.client is None or self._death is None or self._death.done():
            yield CellFinished("died", None, self._death_reason())
            return
        if self.attached:
            with contextlib.suppress(KernelDied):  # a death shows in the cell itself
                await self._probe_in_place()
        content = {
            "code": code,
            "silent": False,
            "store_history": store_history,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        metadata = {ORIGIN_KEY: origin} if origin else {}
        request = self.client.session.msg("execute_request", content, metadata=metadata)
        msg_id = request["header"]["msg_id"]
        log_before = self._log_size()
        self.client.shell_channel.send(request)

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        cpu = self._cpu_watch()
        cpu_due = None if cpu is None else loop.time() + cpu.next_reading()  # when the CPU time is next read
        stopped: str | None = None  # why the cell was interrupted (its wall clock or CPU time)
        budget = OutputBudget(self.output_limit)
        try:
            while True:
                if cpu is not None and cpu_due is not None and stopped is None and loop.time() >= cpu_due:
                    if cpu.exceeded():  # read as messages come too: a cell that prints is never quiet for long
                        stopped = cpu.reason()
                        await self.interrupt()
                        deadline = loop.time() + INTERRUPT_GRACE
                    cpu_due = loop.time() + cpu.next_reading()
                remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
                if cpu_due is not None and stopped is None:
                    wait = max(cpu_due - loop.time(), 0.0)
                    remaining = wait if remaining is None else min(remaining, wait)
                msg = await self._next_message(self.client.get_iopub_msg(), remaining)
                if msg is None:
                    if stopped is not None:  # interrupted, and still no idle: give up on it
                        self.stuck = True
                        if budget.cut:
                            yield OutputCut(budget.cut, budget.limit)
                        yield CellFinished("timeout", None, f"did not stop within {INTERRUPT_GRACE:.0f} s of the interrupt")
                        return
                    if deadline is not None and loop.time() >= deadline:
                        stopped = f"interrupted after {timeout:g} s"
                        await self.interrupt()
                        deadline = loop.time() + INTERRUPT_GRACE
                    continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    self._other(msg)
                    continue
                if msg["header"]["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                    break
                event = parse_iopub(msg, self._probe)
                if event is not None:
                    event = budget.take(event)
                if event is not None:
                    yield event
            reply = await self._next_reply(msg_id, REPLY_GRACE)
        except KernelDied:
            if budget.cut:
                yield OutputCut(budget.cut, budget.limit)
            yield CellFinished("died", None, self._death_reason())
            return
        if budget.cut:
            yield OutputCut(budget.cut, budget.limit)
        reply_content = (reply or {}).get("content", {})
        count = reply_content.get("execution_count")
        if stopped is not None:
            yield CellFinished("timeout", count, stopped)
        elif reply is None:
            yield CellFinished("error", None, self._no_reply_reason(log_before))
        elif reply_content.get("status") == "ok":
            yield CellFinished("ok", count)
        else:
            yield CellFinished("error", count)

    async def complete(self, code: str, cursor_pos: int, timeout: float = 5.0) -> tuple[list[str], int, int] | None:
        """The kernel's completions at `cursor_pos`: (matches, start, end), or None without a reply."""
        if self.client is None or self._death is None or self._death.done():
            return None
        request = self.client.session.msg("complete_request", {"code": code, "cursor_pos": cursor_pos})
        self.client.shell_channel.send(request)
        try:
            reply = await self._next_reply(request["header"]["msg_id"], timeout)
        except KernelDied:
            return None
        content = (reply or {}).get("content", {})
        if content.get("status") != "ok":
            return None
        matches = [str(m) for m in content.get("matches") or []]
        return matches, int(content.get("cursor_start", cursor_pos)), int(content.get("cursor_end", cursor_pos))

    async def graph(self, name: str, timeout: float = 10.0) -> Graph:
        """The autograd graph of the tensor the probe lists as `name`, or a Graph saying
        why there is none."""
        return graph_from_reply(name, await self._ask_probe(graph_request(name), timeout))

    async def set_nan_check(self, on: bool, timeout: float = 10.0) -> str | None:
        """--nan-check on or off from the next cell, and for a restarted kernel; None, or why not."""
        self.env = {**(self.env or {}), NAN_CHECK_ENV: "1" if on else "0"}
        answer = await self._ask_probe({"request": NAN_CHECK_REQUEST, "on": on}, timeout)
        if answer.get("reply") == "nan_check" and answer.get("on") == on:
            return None
        return str(answer.get("error") or "the kernel did not take it")

    async def _ask_probe(self, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send the probe a request on its comm; its answer, or {"error": ...}. Only
        between cells: the probe's comm exists once a cell has run."""
        if self.client is None or self._death is None or self._death.done():
            return {"error": "the kernel is not running"}
        if not self._probe.comm_ids:
            return {"error": "no cell has run yet"}
        comm_id = sorted(self._probe.comm_ids)[-1]
        request = self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        msg_id = request["header"]["msg_id"]
        self.client.shell_channel.send(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        answer: dict[str, Any] = {"error": f"the kernel did not answer within {timeout:g} s"}
        try:
            while (remaining := deadline - loop.time()) > 0:
                msg = await self._next_message(self.client.get_iopub_msg(), remaining)
                if msg is None:
                    break
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "comm_msg" and msg["content"].get("comm_id") == comm_id:
                    answer = dict(msg["content"].get("data") or {})
                elif kind == "status" and msg["content"].get("execution_state") == "idle":
                    break
        except KernelDied:
            return {"error": self._death_reason()}
        return answer

    async def run(self, code: str, **kwargs: Any) -> CellOutcome:
        outcome = CellOutcome()
        async for event in self.execute(code, **kwargs):
            outcome.events.append(event)
        return outcome

    def _cpu_watch(self) -> CpuWatch | None:
        """A sandboxed kernel of our own: the watch on its cell's CPU time."""
        request = sandbox_request(self.env)
        return CpuWatch(self.process.pid, request.cpu_seconds) if request is not None and self.process is not None else None

    def _log_size(self) -> int:
        return self.process.log_size() if self.process is not None else 0

    def _no_reply_reason(self, log_before: int) -> str:
        """Why a cell that went idle got no reply: ipykernel logs the error that stopped it
        (its own machinery failing, not the cell's code) and sends nothing else. Only what
        was logged since the cell was sent counts (a log that shrank was started anew)."""
        size = self._log_size()
        written = size - log_before if size >= log_before else size
        log = self.process.log_tail(min(written, 16_000)) if self.process is not None and written > 0 else ""
        _, found, failure = log.rpartition(_HANDLER_FAILED)
        lines = [line.strip() for line in failure.splitlines() if line.strip()] if found else []
        return f"the kernel sent no reply: {lines[-1]}" if lines else "the kernel sent no reply"

    def _death_reason(self) -> str:
        if self.server is not None:
            if self._death is not None and self._death.done():
                return str(self._death.result())
            return "not connected to the kernel"
        if self.existing is not None:
            if self._death is not None and self._death.done():
                return f"the kernel stopped answering its heartbeat (for {HEARTBEAT_SECONDS:g} s)"
            return "not attached to the kernel"
        if self.process is None:
            return "the kernel is not running"
        code = self.process.process.poll()
        if code is None:
            return "the kernel stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            limit = (self.env or {}).get(MEMORY_LIMIT_ENV)
            if limit and -code in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS):  # a failed allocation, often
                return f"the kernel was killed by {name}; out of memory under --memory-limit {size_text(int(limit))}?"
            return f"the kernel was killed by {name}"
        return f"the kernel exited with code {code}"
