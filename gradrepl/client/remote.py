"""A kernel on a Jupyter Server, a Kernel Gateway or an Enterprise Gateway (`--server URL`):
started, or found by `--kernel-id`, through the server's REST API; its channels over the
server's websocket.

Both go through jupyter_server's gateway client, the code jupyter_server itself uses to run
kernels on a gateway: `GatewayClient` (the URL, the token in an Authorization header, TLS
verification, retries) makes the REST requests and gives the connection arguments the
websocket is opened with, by tornado's websocket client. Messages cross the websocket as
JSON text with a `channel` key (the protocol every such server speaks); binary frames are
read with jupyter_server's own decoder. jupyter_server's `GatewayKernelClient` is not used:
its channels wait for messages by spinning (`asyncio.sleep(0)` in a loop) and open the
websocket without the token.

Here, each channel is an asyncio queue the websocket's reader fills: waiting costs nothing.
A websocket that drops is opened again; if the server says the kernel is gone (culled, shut
down), `death` ends with the reason. The token is never printed, logged or put in a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

RECONNECT_SECONDS = 10.0  # how long a dropped websocket is tried again before the kernel counts as lost
WATCH_SECONDS = 3.0  # how often the server is asked whether it still has the kernel (its heartbeat, here)


class ServerError(Exception):
    """The server could not be used; str() is one line for the user (never the token)."""


@dataclass(frozen=True)
class Server:
    """A Jupyter Server (or gateway) to run the kernel on."""

    url: str
    token: str = field(default="", repr=False)
    kernel_id: str | None = None  # attach to this kernel instead of starting one
    kernel_name: str = "python3"
    shutdown_on_exit: bool | None = None  # None: shut down a kernel gradrepl started, leave one it attached to

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
        self._socket: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self._channels = {name: _Channel(name, self) for name in ("shell", "iopub", "stdin", "control", "hb")}
        self.shell_channel, self.iopub_channel = self._channels["shell"], self._channels["iopub"]
        self.stdin_channel, self.control_channel = self._channels["stdin"], self._channels["control"]

    # ------------------------------------------------------------ REST

    def _gateway(self) -> Any:
        from jupyter_server.gateway.gateway_client import GatewayClient

        quiet = logging.getLogger("gradrepl.gateway")  # it logs failures gradrepl says in a line of its own
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        logging.getLogger("ServerApp").addHandler(logging.NullHandler())
        logging.getLogger("ServerApp").propagate = False
        gateway = GatewayClient.instance(log=quiet)
        gateway.url, gateway.auth_token = self.server.url, self.server.token
        gateway.ws_url = "ws" + self.server.url[4:]  # http -> ws, https -> wss
        return gateway

    async def _request(self, path: str, method: str = "GET", body: Any = None) -> Any:
        from jupyter_server.gateway.gateway_client import gateway_request
        from tornado import web
        from tornado.httpclient import HTTPClientError

        self._gateway()
        started = time.perf_counter()
        try:
            response = await gateway_request(f"{self.server.url}/api/kernels{path}", method=method,
                                             body=None if body is None else json.dumps(body),
                                             headers={"Content-Type": "application/json"} if body is not None else {})
        except web.HTTPError as err:
            cause = err.__cause__
            if isinstance(cause, socket.gaierror):
                raise ServerError(f"gradrepl: no such host: {urlsplit(self.server.url).hostname}") from None
            if isinstance(cause, ConnectionError | OSError) and not isinstance(cause, HTTPClientError):
                raise ServerError(f"gradrepl: cannot reach the server at {self.server.url}: {cause.strerror or cause}") from None
            raise ServerError(self._http_problem(err.status_code)) from None
        except (OSError, TimeoutError) as err:  # TLS, or a timeout that is not the server's answer
            raise ServerError(f"gradrepl: cannot reach the server at {self.server.url}: {err}"[:300]) from None
        self.latency = time.perf_counter() - started
        return json.loads(response.body) if response.body else None

    def _http_problem(self, status: int) -> str:
        if status in (401, 403):
            return f"gradrepl: the server at {self.server.url} refused the token (HTTP {status}): check --token or JUPYTER_TOKEN"
        if status == 404 and self.kernel_id:
            return f"gradrepl: the server at {self.server.url} has no kernel {self.kernel_id}"
        if status == 599:
            return f"gradrepl: cannot reach the server at {self.server.url}"
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
            except ServerError as err:
                reason = str(err).removeprefix("gradrepl: ")
                if "has no kernel" in reason:
                    self._lost(f"the server no longer has the kernel (culled or shut down): {self.kernel_id}")
                elif loop.time() - reachable > RECONNECT_SECONDS:
                    self._lost(reason)

    def _lost(self, reason: str) -> None:
        if self.death is not None and not self.death.done():
            self.death.set_result(reason)

    async def interrupt(self) -> None:
        await self._request(f"/{self.kernel_id}/interrupt", "POST", {})

    async def restart(self) -> None:
        await self._request(f"/{self.kernel_id}/restart", "POST", {})

    async def delete(self) -> None:
        with contextlib.suppress(ServerError):
            await self._request(f"/{self.kernel_id}", "DELETE")

    # ------------------------------------------------------------ websocket

    async def _connect(self) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = f"{self._gateway().ws_url}/api/kernels/{self.kernel_id}/channels?session_id={self.session.session}"
        request = HTTPRequest(url, **self._gateway().load_connection_args())
        try:
            self._socket = await websocket_connect(request)
        except Exception as err:
            raise ServerError(f"gradrepl: cannot open the kernel's channels at {self.server.url}: {err}"[:300]) from None
        self._reader = asyncio.ensure_future(self._read(self._socket))

    async def _read(self, ws: Any) -> None:
        from jupyter_server.services.kernels.connection.base import deserialize_binary_message

        quick_ack = _quick_ack(ws)
        while True:
            frame = await ws.read_message()
            if frame is None:
                break
            quick_ack()
            try:
                msg = deserialize_binary_message(frame) if isinstance(frame, bytes) else json.loads(frame)
                channel = self._channels.get(msg.pop("channel", "iopub"))
            except (ValueError, KeyError, TypeError):
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
            except ServerError as err:
                reason = str(err).removeprefix("gradrepl: ")
                if "has no kernel" in reason:
                    reason = f"the server no longer has the kernel (culled or shut down): {self.kernel_id}"
                    break
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
