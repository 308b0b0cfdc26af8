"""`--server URL`: kernels on a real Jupyter Server and a real Kernel Gateway, started on
127.0.0.1 with a fresh token: the seed gives Jupyter's outputs through them, bad input is one
line, a kernel the server culls or a websocket that drops mid-cell is handled, interrupt and
restart go through the server, and the token is never shown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.jupyter_servers import RunningServer
from benchmarks.terminal import Terminal
from conftest import DATA, EXAMPLES
from gradrepl.client.events import CellFinished, Error, ProbeReport, Stream
from gradrepl.client.remote import Server, ServerLink
from gradrepl.client.session import KernelSession
from support.command_line import gradrepl, records, script
from support.waiting import wait_until
from test_replay import without_addresses

pytestmark = pytest.mark.kernel


@pytest.fixture(params=["jupyter-server", "kernel-gateway"])
def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    server = RunningServer(request.param, tmp_path)
    yield server
    server.stop()


@pytest.fixture
def jupyter_server(tmp_path: Path) -> Iterator[RunningServer]:
    server = RunningServer("jupyter-server", tmp_path)
    yield server
    server.stop()


def with_token(server: RunningServer) -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "JUPYTER_TOKEN": server.token}


def test_the_seed_through_it_prints_what_jupyter_printed_and_the_kernel_goes_after(any_server: RunningServer) -> None:
    expected = json.loads((DATA / "seed_autograd.jupyter.json").read_text())
    run = gradrepl("replay", "--json", "--server", any_server.url, str(EXAMPLES / "seed_autograd.py"), env=with_token(any_server))
    assert run.returncode == 0, run.stderr
    got = records(run.stdout)
    assert [(g["cell"], without_addresses(g["stdout"]), without_addresses(g["result"])) for g in got] == [
        (w["cell"], without_addresses(w["stdout"]), without_addresses(w["result"])) for w in expected]
    assert got[3]["backward"][0]["nodes"] == ["MeanBackward0", "PowBackward0", "AccumulateGrad"]
    assert any_server.token not in run.stdout + run.stderr
    wait_until(lambda: any_server.kernels() == [], "the kernel it started shut down")  # by the server, once asked


def test_graph_and_check_run_on_it_in_parallel_kernels(jupyter_server: RunningServer, examples_copy: Path) -> None:
    env = with_token(jupyter_server)
    graph = gradrepl("graph", "--server", jupyter_server.url, str(EXAMPLES / "seed_autograd.py"), "v_out", env=env)
    assert graph.returncode == 0 and graph.stdout.splitlines()[1] == "#0 MeanBackward0 → v_out", graph.stderr
    check = gradrepl("check", "-j", "2", "--server", jupyter_server.url, str(examples_copy), env=env)
    assert check.returncode == 0, check.stdout
    assert check.stdout.splitlines()[-1].endswith(" passed, 0 failed in 10 files")
    wait_until(lambda: jupyter_server.kernels() == [], "the lessons' kernels shut down")


def test_a_wrong_token_an_unreachable_server_and_a_bad_url_are_one_line_and_exit_2(jupyter_server: RunningServer,
                                                                                 tmp_path: Path) -> None:
    path = script(tmp_path, "print('never')")
    wrong = gradrepl("replay", "--server", jupyter_server.url, str(path), env={**os.environ, "JUPYTER_TOKEN": "not-it"})
    assert (wrong.returncode, wrong.stdout) == (2, "")
    assert wrong.stderr == (f"gradrepl: the server at {jupyter_server.url} refused the token (HTTP 403): "
                            "check --token or JUPYTER_TOKEN\n")
    jupyter_server.stop()
    gone = gradrepl("replay", "--server", jupyter_server.url, str(path), env=with_token(jupyter_server))
    assert (gone.returncode, gone.stderr) == (2, f"gradrepl: cannot reach the server at {jupyter_server.url}: Connection refused\n")
    bad = gradrepl("replay", "--server", "ftp://example.com", str(path))
    assert (bad.returncode, bad.stderr) == (2, "gradrepl: --server 'ftp://example.com' is not an http:// or https:// URL\n")
    both = gradrepl("replay", "--server", jupyter_server.url, "--existing", "k.json", str(path))
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_a_kernel_given_by_id_is_attached_to_and_left_running(jupyter_server: RunningServer, tmp_path: Path) -> None:
    kernel = jupyter_server.rest("/api/kernels", "POST", {"name": "python3"})["id"]
    env = with_token(jupyter_server)
    first = script(tmp_path, "w = 41")
    assert gradrepl("replay", "--server", jupyter_server.url, "--kernel-id", kernel, str(first), env=env).returncode == 0
    assert jupyter_server.kernels() == [kernel]
    second = tmp_path / "second.py"
    second.write_text("# %%\nprint(w + 1)\n")
    run = gradrepl("replay", "--server", jupyter_server.url, "--kernel-id", kernel, "--shutdown-on-exit", str(second), env=env)
    assert run.returncode == 0 and "42" in run.stdout
    wait_until(lambda: jupyter_server.kernels() == [], "the kernel shut down")


def test_a_kernel_the_server_culls_mid_cell_ends_the_cell_with_the_reason(jupyter_server: RunningServer, tmp_path: Path) -> None:
    started = tmp_path / "started"

    async def run() -> CellFinished:
        session = KernelSession(attach=Server(jupyter_server.url, jupyter_server.token))
        await session.start()
        link = session.client
        assert isinstance(link, ServerLink)

        def cull() -> None:
            wait_until(started.exists, "the cell started")
            jupyter_server.rest(f"/api/kernels/{link.kernel_id}", "DELETE")

        culling = threading.Thread(target=cull)
        culling.start()
        try:
            outcome = await session.run(f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(60)")
        finally:
            await asyncio.to_thread(culling.join)
            await session.shutdown()
        finished = outcome.events[-1]
        assert isinstance(finished, CellFinished)
        return finished

    finished = asyncio.run(run())
    assert finished.status == "died"
    assert finished.reason.startswith("the server no longer has the kernel (culled or shut down): ")


def test_a_websocket_dropped_mid_cell_is_opened_again_and_the_cell_ends_as_usual(jupyter_server: RunningServer,
                                                                                tmp_path: Path) -> None:
    started = tmp_path / "started"

    async def run() -> list[object]:
        session = KernelSession(attach=Server(jupyter_server.url, jupyter_server.token))
        await session.start()
        link = session.client
        assert isinstance(link, ServerLink)

        async def drop() -> None:
            while not started.exists():
                await asyncio.sleep(0.02)
            link._socket.close()  # as a network fault would

        dropping = asyncio.ensure_future(drop())
        try:
            outcome = await session.run(f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\n"
                                        "time.sleep(1)\nprint('after the drop')")
        finally:
            await dropping
            await session.shutdown()
        return outcome.events

    events = asyncio.run(run())
    assert [e.text for e in events if isinstance(e, Stream)] == ["after the drop\n"]
    assert isinstance(events[-1], CellFinished) and events[-1].status == "ok"


def test_interrupt_and_restart_go_through_the_server(jupyter_server: RunningServer, tmp_path: Path) -> None:
    started = tmp_path / "started"

    async def run() -> tuple[list[object], list[object]]:
        session = KernelSession(attach=Server(jupyter_server.url, jupyter_server.token))
        await session.start()

        async def interrupt() -> None:
            while not started.exists():
                await asyncio.sleep(0.02)
            await session.interrupt()

        try:
            stopping = asyncio.ensure_future(interrupt())
            sleeping = await session.run(f"import pathlib, time, torch\nx = torch.ones(1)\n"
                                         f"pathlib.Path({str(started)!r}).touch()\ntime.sleep(60)")
            await stopping
            await session.restart()
            fresh = await session.run("import torch\nprint('x' in dir())\ny = torch.zeros(2)")
        finally:
            await session.shutdown()
        return sleeping.events, fresh.events

    sleeping, fresh = asyncio.run(run())
    assert [e.ename for e in sleeping if isinstance(e, Error)] == ["KeyboardInterrupt"]
    assert [e.text for e in fresh if isinstance(e, Stream)] == ["False\n"]
    assert [[t.name for t in e.tensors] for e in fresh if isinstance(e, ProbeReport)] == [["y"]]
    finished = fresh[-1]
    assert isinstance(finished, CellFinished) and finished.execution_count == 1


def test_the_token_from_the_config_file_is_used_only_when_the_file_is_private(jupyter_server: RunningServer,
                                                                            tmp_path: Path) -> None:
    config = tmp_path / "xdg-config"
    (config / "gradrepl").mkdir(parents=True)
    settings = config / "gradrepl" / "config.toml"
    settings.write_text(f'server_token = "{jupyter_server.token}"\n')
    settings.chmod(0o644)
    path = script(tmp_path, "print(6 * 7)")
    env = {key: value for key, value in os.environ.items() if key != "JUPYTER_TOKEN"} | {"XDG_CONFIG_HOME": str(config)}
    refused = gradrepl("replay", "--server", jupyter_server.url, str(path), env=env)
    assert refused.returncode == 2 and refused.stderr.startswith(f"gradrepl: {settings} holds server_token but other users can read it")
    assert jupyter_server.token not in refused.stderr
    settings.chmod(0o600)
    run = gradrepl("replay", "--server", jupyter_server.url, str(path), env=env)
    assert run.returncode == 0 and "42" in run.stdout


def test_a_token_sent_in_clear_to_another_host_is_warned_about() -> None:
    assert Server("http://gpu-box:8888", "t").cleartext_warning() == (
        "gradrepl: warning: http://gpu-box is not encrypted: the token travels in clear (use https://, or an ssh tunnel "
        "to localhost)")
    assert Server("https://gpu-box:8888", "t").cleartext_warning() is None
    assert Server("http://127.0.0.1:8888", "t").cleartext_warning() is None
    assert "t0ken" not in repr(Server("http://gpu-box", "t0ken"))


def test_the_app_runs_on_it_and_a_closed_terminal_shuts_its_kernel_down(
    jupyter_server: RunningServer, gradrepl_terminal: Callable[..., Terminal]
) -> None:
    app = gradrepl_terminal("--server", jupyter_server.url, env=with_token(jupyter_server))
    app.wait_for("idle", f"on 127.0.0.1:{jupyter_server.port}")
    app.type("import torch\rx = torch.ones(2, requires_grad=True)\r(x * 5).sum().backward()\rprint(x.grad)\r")
    app.wait_for("tensor([5., 5.])", "x.grad fresh")
    assert len(jupyter_server.kernels()) == 1
    app.kill(signal.SIGHUP)
    wait_until(lambda: jupyter_server.kernels() == [], "the kernel it started shut down")
