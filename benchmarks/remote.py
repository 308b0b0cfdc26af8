"""server-roundtrip, replay-seed-server: gradrepl with its kernel on a local Jupyter Server
(`--server`, started here on 127.0.0.1) against the same with a kernel of its own."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import GRADREPL, SEED, Row, median, say
from benchmarks.jupyter_servers import RunningServer
from benchmarks.replay import run_timed

TRIVIAL = "1 + 1"


async def _roundtrips(session: object, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        await session.run(TRIVIAL)  # type: ignore[attr-defined]
        times.append((time.perf_counter() - started) * 1e3)
    return times


async def _server_roundtrips(server: RunningServer, samples: int) -> tuple[list[float], list[float]]:
    from gradrepl.client.remote import Server
    from gradrepl.client.session import KernelSession

    remote, local = KernelSession(attach=Server(server.url, server.token)), KernelSession()
    await asyncio.gather(remote.start(), local.start())
    try:
        through: list[float] = []
        own: list[float] = []
        for index in range(samples):  # alternating, one cell at a time
            for session, kept in ((remote, through), (local, own)) if index % 2 == 0 else ((local, own), (remote, through)):
                kept.extend(await _roundtrips(session, 1))
        return through, own
    finally:
        await asyncio.gather(remote.shutdown(), local.shutdown())


def bench_remote(rounds: int, samples: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="gradrepl-bench-server-") as folder:
        server = RunningServer("jupyter-server", Path(folder))
        try:
            asyncio.run(_server_roundtrips(server, 5))  # warm: the server's first kernel, imports
            through, own = asyncio.run(_server_roundtrips(server, samples))
            env = {**os.environ, "JUPYTER_TOKEN": server.token}
            replay_through: list[float] = []
            replay_own: list[float] = []
            for index in range(rounds):
                order = [("server", replay_through), ("own", replay_own)]
                for kind, kept in order if index % 2 == 0 else reversed(order):
                    extra = ["--server", server.url] if kind == "server" else []
                    kept.append(run_timed([str(GRADREPL), "replay", *extra, str(SEED)], cwd=SEED.parent, env=env,
                                          label=f"replay ({kind} kernel)"))
        finally:
            server.stop()
    value, anchor = median(through), median(own)
    limit = 2 * anchor + 5
    say(f"server-roundtrip: {value:.2f} ms through the server, {anchor:.2f} ms with a kernel of its own")
    ratio = median([a / b for a, b in zip(replay_through, replay_own, strict=True)])
    return [
        Row("server-roundtrip", value, "ms", "a kernel of gradrepl's own", anchor, value / anchor,
            f"<= 2x + 5 ms ({limit:.1f} ms)", value <= limit,
            note=f"`{TRIVIAL}` through a local Jupyter Server (REST + websocket) vs the same cell in a kernel "
            f"gradrepl starts; alternating, median of {samples} each",
            samples=through, anchor_samples=own),
        Row("replay-seed-server", median(replay_through), "s", "gradrepl replay, a kernel of its own", median(replay_own),
            ratio, "ratio <= 1.3", ratio <= 1.3,
            note=f"`gradrepl replay --server URL` of the seed (a kernel started on the server, shut down after) vs "
            f"plain `gradrepl replay`; alternating, median of {rounds} per-round ratios",
            samples=replay_through, anchor_samples=replay_own),
    ]
