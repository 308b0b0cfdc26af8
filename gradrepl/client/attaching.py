"""The part of a KernelSession that works in a kernel gradrepl did not launch: attaching to
it (a connection file, or a kernel on a server), putting the probe in, and keeping the probe
there when the kernel is replaced where it runs (a restart by its notebook or server)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gradrepl.client.events import ProbeState, parse_iopub
from gradrepl.client.existing import Existing, attach_result, install_request
from gradrepl.client.kernel_errors import KernelDied, KernelError, KernelUnreachable
from gradrepl.client.remote import Server, ServerError, ServerLink

READY_TIMEOUT = 120.0  # seconds a kernel has to answer once started
REPLY_GRACE = 5.0  # seconds a reply may lag its request's idle status
HEARTBEAT_SECONDS = 3.0  # an attached kernel is dead once its heartbeat is silent this long


class AttachedKernel:
    """Mixed into KernelSession, whose state and waits it uses."""

    client: Any
    env: dict[str, str] | None
    on_latency: Callable[[float], None] | None
    _death: asyncio.Future[Any] | None
    _probe: ProbeState
    _needs_probe: bool
    _kernel_identity: str | None

    if TYPE_CHECKING:
        async def _until_ready(self) -> None: ...
        async def _next_reply(self, msg_id: str, timeout: float) -> dict[str, Any] | None: ...
        async def shutdown(self, *, now: bool = False) -> None: ...

    async def _attach(self, existing: Existing, timeout: float) -> None:
        """Connect to a running kernel, its death watched by its heartbeat, and put the probe in it."""
        from jupyter_client.asynchronous import AsyncKernelClient

        client = AsyncKernelClient()
        client.load_connection_info(existing.connection_info)  # type: ignore[arg-type]  # a plain dict of the same keys
        loop = asyncio.get_running_loop()
        death: asyncio.Future[int] = loop.create_future()
        self._death = death

        def died() -> None:
            if not death.done():
                death.set_result(-1)

        def heart_failed(since_last_heartbeat: float) -> None:  # on the heartbeat's thread
            loop.call_soon_threadsafe(died)

        client.hb_channel.time_to_dead = HEARTBEAT_SECONDS
        client.hb_channel.call_handlers = heart_failed
        client.start_channels()
        self.client = client
        await self._ready_with_probe(f"the kernel of '{existing.connection_file}' does not answer", timeout)

    async def _attach_server(self, server: Server, timeout: float) -> None:
        """Start (or find) the kernel on the server, open its channels, and put the probe in it."""
        link = ServerLink(server)
        link.on_latency = self.on_latency
        try:
            await asyncio.wait_for(link.start(), timeout)
        except ServerError as err:
            link.stop_channels()
            raise KernelUnreachable(str(err)) from None
        except asyncio.TimeoutError:
            link.stop_channels()
            raise KernelError(f"gradrepl: the server at {server.url} did not start the kernel within {timeout:.0f} s") from None
        assert link.death is not None
        self.client, self._death = link, link.death
        await self._ready_with_probe(f"the kernel on {server.url} does not answer", timeout)

    async def _ready_with_probe(self, silent: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the kernel answers, then put the probe in; KernelError (the session left
        as shut down) if either fails."""
        try:
            await asyncio.wait_for(self._until_ready(), timeout)
            answer = await asyncio.wait_for(self._install_probe(), timeout)
        except (asyncio.TimeoutError, KernelDied):
            await self.shutdown()
            raise KernelError(f"gradrepl: {silent}") from None
        if "error" in answer:
            await self.shutdown()
            raise KernelError(f"gradrepl: could not put the probe into the kernel: {answer['error']}"[:300])

    async def _install_probe(self) -> dict[str, Any]:
        code, expressions = install_request(dict(self.env or {}))  # the settings a launched kernel has in its environment
        content = {"code": code, "silent": True, "store_history": False, "user_expressions": expressions,
                   "allow_stdin": False, "stop_on_error": False}
        request = self.client.session.msg("execute_request", content)
        self.client.shell_channel.send(request)
        answer = attach_result(await self._next_reply(request["header"]["msg_id"], timeout=READY_TIMEOUT))
        if answer.get("comm"):
            self._probe.comm_ids.add(str(answer["comm"]))
        self._needs_probe = "error" in answer
        return answer

    def _detach(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.stop_channels()
        self._probe = ProbeState()

    def _other(self, msg: dict[str, Any]) -> None:
        """A message that is not for the request waited on: another client's cell (of a kernel
        shared with a notebook), or one that finished before. Its probe report still updates
        the tensor table (the probe sends each report as a delta); one from a kernel process
        since replaced does not."""
        if msg["header"]["msg_type"] in ("comm_open", "comm_msg") and msg["header"].get("session") == self._kernel_identity:
            parse_iopub(msg, self._probe)

    async def _probe_in_place(self) -> None:
        """Before a cell in an attached kernel: the probe put in again if the kernel is a new
        process (restarted where it runs), told by the session id its replies carry."""
        await self._read_others()
        request = self.client.session.msg("kernel_info_request")
        self.client.shell_channel.send(request)
        reply = await self._next_reply(request["header"]["msg_id"], timeout=REPLY_GRACE)
        identity = (reply or {}).get("header", {}).get("session")
        if identity is not None and identity != self._kernel_identity:
            self._probe = ProbeState()
            self._needs_probe = True
        if self._needs_probe:
            await self._install_probe()
        if identity is not None and not self._needs_probe:
            self._kernel_identity = identity

    async def _read_others(self) -> None:
        """What came on IOPub between requests, read without waiting."""
        with contextlib.suppress(Exception):  # queue.Empty once all is read
            while True:
                self._other(await self.client.get_iopub_msg(timeout=0))
