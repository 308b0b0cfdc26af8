"""A kernel on a Jupyter Server, a Kernel Gateway or an Enterprise Gateway (`--server URL`):
started, or found by `--kernel-id`, through the server's REST API (`/api/kernels`); its
channels over the server's websocket (`/api/kernels/ID/channels`), the JSON messages with a
`channel` key that every such server speaks.

Both through tornado's HTTP and websocket clients (maintained, and installed with ipykernel):
the token in an Authorization header, TLS verified by default. jupyter_server's own gateway
client was tried and left: importing it costs 1.7 s here before the first request (its event
logger loads jsonschema's format checkers), which doubled a replay's time, and its
GatewayKernelClient waits for messages by spinning the event loop (`asyncio.sleep(0)` in a
loop) and opens the websocket without the token. jupyter_kernel_client is synchronous, with
its heartbeat not implemented. Binary frames (messages with buffers) are read with
jupyter_server's decoder when it is installed (`gradrepl[remote]`).

Each channel is an asyncio queue the websocket's reader fills: waiting costs nothing. A
websocket that drops is opened again; if the server says the kernel is gone (culled, shut
down), `death` ends with the reason. The token is never printed, logged or put in a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CONNECT_SECONDS = 10.0
REQUEST_SECONDS = 60.0  # a gateway may take this long to start a kernel on a cluster
RECONNECT_SECONDS = 10.0  # how long a dropped websocket is tried again before the kernel counts as lost
WATCH_SECONDS = 3.0  # how often the server is asked whether it still has the kernel (its heartbeat, here)


class ServerError(Exception):
    """The server could not be used; str() is one line for the user (never the token)."""


class KernelGone(ServerError):
    """The server answers, but has no such kernel (culled, shut down, or a wrong --kernel-id)."""


@dataclass(frozen=True)
class Server:
    """A Jupyter Server (or gateway) to run the kernel on."""

    url: str
    token: str = field(default="", repr=False)
    kernel_id: str | None = None  # attach to this kernel instead of starting one
    kernel_name: str = "python3"
    shutdown_on_exit: bool | None = None  # None: shut down a kernel gradrepl started, leave one it attached to

    @property
    def where(self) -> str:
        """The server as the status line names it: host:port."""
        return urlsplit(self.url).netloc

    @property
    def ends_with_session(self) -> bool:
        return self.shutdown_on_exit if self.shutdown_on_exit is not None else self.kernel_id is None

    def cleartext_warning(self) -> str | None:
        """A line for a token sent in clear: http:// to a host that is not this machine."""
        parts = urlsplit(self.url)
        if parts.scheme == "http" and self.token and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            return (f"gradrepl: warning: {parts.scheme}://{parts.hostname} is not encrypted: the token travels in clear "
                    "(use https://, or an ssh tunnel to localhost)")
        return None


def check_url(url: str) -> str:
    """`url` without a trailing slash, or ServerError saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError(f"gradrepl: --server {url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


class _Channel:
    """One channel of the kernel: messages sent out on the websocket, received into a queue."""

    def __init__(self, name: str, link: ServerLink) -> None:
        self.name = name
        self.link = link
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def send(self, msg: dict[str, Any]) -> None:
        self.link.send(self.name, msg)

    async def get(self, timeout: float | None) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.messages.get(), timeout)
        except asyncio.TimeoutError:
            raise queue.Empty from None


class ServerLink:
    """The kernel's five channels through the server: the part of jupyter_client's
    AsyncKernelClient that KernelSession uses (session.msg, *_channel.send, get_*_msg)."""

    def __init__(self, server: Server) -> None:
        from jupyter_client.session import Session

        self.server = server
        self.session = Session(key=b"")  # the server signs what it passes on to the kernel
        self.kernel_id: str | None = server.kernel_id
        self.death: asyncio.Future[str] | None = None
        self.latency: float | None = None  # seconds of the last REST round trip
        self.on_latency: Callable[[float], None] | None = None  # told each new one
        self._socket: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self._channels = {name: _Channel(name, self) for name in ("shell", "iopub", "stdin", "control", "hb")}
        self.shell_channel, self.iopub_channel = self._channels["shell"], self._channels["iopub"]
        self.stdin_channel, self.control_channel = self._channels["stdin"], self._channels["control"]

    # ------------------------------------------------------------ REST

    def _connection(self) -> dict[str, Any]:
        """What every request carries: the token, and bounded waits."""
        headers = {"Authorization": f"token {self.server.token}"} if self.server.token else {}
        return {"headers": headers, "connect_timeout": CONNECT_SECONDS, "request_timeout": REQUEST_SECONDS,
                "validate_cert": True}

    async def _request(self, path: str, method: str = "GET", body: Any = None) -> Any:
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        connection = self._connection()
        if body is not None:
            connection["headers"] = {**connection["headers"], "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            response = await AsyncHTTPClient().fetch(f"{self.server.url}/api/kernels{path}", method=method,
                                                     body=None if body is None else json.dumps(body),
                                                     allow_nonstandard_methods=True, **connection)
        except HTTPClientError as err:
            if err.code == 404 and self.kernel_id:
                raise KernelGone(f"gradrepl: the server at {self.server.url} has no kernel {self.kernel_id}") from None
            raise ServerError(self._http_problem(err.code)) from None
        except socket.gaierror:
            raise ServerError(f"gradrepl: no such host: {urlsplit(self.server.url).hostname}") from None
        except OSError as err:  # refused, unreachable, TLS
            raise ServerError(f"gradrepl: cannot reach the server at {self.server.url}: {err.strerror or err}"[:300]) from None
        self.latency = time.perf_counter() - started
        if self.on_latency is not None:
            self.on_latency(self.latency)
        return json.loads(response.body) if response.body else None

    def _http_problem(self, status: int) -> str:
        if status in (401, 403):
            return f"gradrepl: the server at {self.server.url} refused the token (HTTP {status}): check --token or JUPYTER_TOKEN"
        if status == 599:
            return f"gradrepl: the server at {self.server.url} did not answer within {REQUEST_SECONDS:g} s"
        return f"gradrepl: the server at {self.server.url} answered HTTP {status}"

    async def start(self) -> None:
        """Start the kernel (or find --kernel-id's) and open its channels."""
        if self.kernel_id is None:
            model = await self._request("", "POST", {"name": self.server.kernel_name})
            self.kernel_id = str(model["id"])
        else:
            await self._request(f"/{self.kernel_id}")
        self.death = asyncio.get_running_loop().create_future()
        await self._connect()
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        """Ask the server every WATCH_SECONDS whether it still has the kernel, as a Jupyter
        front end does (a kernel shut down or culled leaves the websocket open, silent); the
        round trip is the link's latency. Unreachable for RECONNECT_SECONDS: lost."""
        loop = asyncio.get_running_loop()
        reachable = loop.time()
        while self.death is not None and not self.death.done():
            await asyncio.sleep(WATCH_SECONDS)
            try:
                await self._request(f"/{self.kernel_id}")
                reachable = loop.time()
            except KernelGone:
                self._lost(self._gone())
            except ServerError as err:
                if loop.time() - reachable > RECONNECT_SECONDS:
                    self._lost(str(err).removeprefix("gradrepl: "))

    def _gone(self) -> str:
        return f"the server no longer has the kernel (culled or shut down): {self.kernel_id}"

    def _lost(self, reason: str) -> None:
        if self.death is not None and not self.death.done():
            self.death.set_result(reason)

    async def interrupt(self) -> None:
        await self._request(f"/{self.kernel_id}/interrupt", "POST", {})

    async def restart(self) -> None:
        await self._request(f"/{self.kernel_id}/restart", "POST", {})

    async def delete(self) -> None:
        """Ask the server to shut the kernel down. Its answer comes once the kernel process has
        exited (most of a second, with torch loaded): waited for only as long as the request
        takes to arrive, twice the last round trip; the server finishes the shutdown anyway."""
        arrived = max(0.25, 2 * (self.latency or 0.0) + 0.1)
        with contextlib.suppress(ServerError, asyncio.TimeoutError):
            await asyncio.wait_for(self._request(f"/{self.kernel_id}", "DELETE"), arrived)

    def delete_now(self) -> None:
        """delete(), from a signal handler on the way out (no event loop to run it): a
        kernel gradrepl started on the server must not outlive a closed terminal."""
        import urllib.request

        if self.kernel_id is None or not self.server.ends_with_session:
            return
        headers = self._connection()["headers"]
        request = urllib.request.Request(f"{self.server.url}/api/kernels/{self.kernel_id}", method="DELETE", headers=headers)
        with contextlib.suppress(Exception):
            urllib.request.urlopen(request, timeout=max(0.5, 2 * (self.latency or 0.0) + 0.2)).close()

    # ------------------------------------------------------------ websocket

    async def _connect(self) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        ws_url = "ws" + self.server.url[4:]  # http -> ws, https -> wss
        url = f"{ws_url}/api/kernels/{self.kernel_id}/channels?session_id={self.session.session}"
        request = HTTPRequest(url, **self._connection())
        try:
            self._socket = await websocket_connect(request)
        except Exception as err:
            raise ServerError(f"gradrepl: cannot open the kernel's channels at {self.server.url}: {err}"[:300]) from None
        self._reader = asyncio.ensure_future(self._read(self._socket))

    async def _read(self, ws: Any) -> None:
        quick_ack = _quick_ack(ws)
        while True:
            frame = await ws.read_message()
            if frame is None:
                break
            quick_ack()
            try:
                msg = _binary_message(frame) if isinstance(frame, bytes) else json.loads(frame)
                channel = self._channels.get(msg.pop("channel", "iopub"))
            except (ValueError, KeyError, TypeError, ImportError):
                continue
            if channel is not None:
                channel.messages.put_nowait(msg)
            if channel is self.iopub_channel and not msg.get("parent_header"):
                state = (msg.get("content") or {}).get("execution_state")
                if state == "restarting":  # the server's restarter: the kernel process died
                    self._lost("the kernel died; the server starts it again (F8 restarts it)")
                elif state == "dead":
                    self._lost("the kernel died and the server could not start it again")
        if not self._closing:
            await self._dropped()

    async def _dropped(self) -> None:
        """The websocket closed under us: open it again, unless the server no longer has the kernel."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECONNECT_SECONDS
        reason = "the server closed the kernel's channels"
        while not self._closing and loop.time() < deadline:
            try:
                await self._request(f"/{self.kernel_id}")
                await self._connect()
                return
            except KernelGone:
                reason = self._gone()
                break
            except ServerError as err:
                reason = str(err).removeprefix("gradrepl: ")
            await asyncio.sleep(1.0)  # the server is down or unreachable: a second between tries
        self._lost(reason)

    def send(self, channel: str, msg: dict[str, Any]) -> None:
        from jupyter_client.jsonutil import json_default

        if self._socket is None:
            return
        with contextlib.suppress(Exception):  # a closed socket: the reader notices, and reconnects
            self._socket.write_message(json.dumps({**msg, "channel": channel}, default=json_default))

    async def get_shell_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return await self.shell_channel.get(timeout)

    async def get_iopub_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return await self.iopub_channel.get(timeout)

    def stop_channels(self) -> None:
        self._closing = True
        if self._socket is not None:
            with contextlib.suppress(Exception):
                self._socket.close()
        for task in (self._reader, self._watcher):
            if task is not None:
                task.cancel()


def _quick_ack(ws: Any) -> Any:
    """What to call after each frame read: on Linux, acknowledge at once. A server writes a
    reply as several small frames without TCP_NODELAY (jupyter_server does), so each frame
    after the first waits for the ACK of the one before, which Linux delays by up to 40 ms:
    a trivial cell took 48 ms through a local server instead of 4."""
    option = getattr(socket, "TCP_QUICKACK", None)
    raw = getattr(getattr(ws, "stream", None), "socket", None)
    if option is None or raw is None:
        return lambda: None

    def ack() -> None:
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, option, 1)

    return ack


def _binary_message(frame: bytes) -> dict[str, Any]:
    """A message with buffers, as the server frames it (ImportError without jupyter_server)."""
    from jupyter_server.services.kernels.connection.base import deserialize_binary_message

    return dict(deserialize_binary_message(frame))
