"""`--existing CONNECTION_FILE`: a plain ipykernel that gradrepl did not start (as a user runs
`python -m ipykernel_launcher -f FILE`, or over an ssh tunnel), attached to by replay, graph,
check and the app: the same outputs as a kernel of its own, the probe put in silently, the
kernel left running, interrupted over its control channel, its death and restart noticed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient, KernelManager
from jupyter_client.connect import write_connection_file

from benchmarks.terminal import CTRL_Q, Terminal
from conftest import DATA, EXAMPLES
from gradrepl.client.events import CellFinished, ProbeReport
from gradrepl.client.existing import find_existing
from gradrepl.client.session import KernelSession
from support.command_line import gradrepl, records, script
from support.waiting import wait_until
from test_replay import without_addresses

pytestmark = pytest.mark.kernel

SHIFT_TAB = b"\x1b[Z"


class PlainKernel:
    """An ipykernel started by hand on 127.0.0.1 ports, with gradrepl nowhere in its start-up."""

    def __init__(self, folder: Path) -> None:
        self.connection_file = folder / "kernel-plain.json"
        write_connection_file(str(self.connection_file), ip="127.0.0.1")
        self.process = subprocess.Popen([sys.executable, "-m", "ipykernel_launcher", "-f", str(self.connection_file)],
                                        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.process.poll() is None

    def client(self) -> BlockingKernelClient:
        client = BlockingKernelClient()
        client.load_connection_file(str(self.connection_file))
        client.start_channels()
        client.wait_for_ready(timeout=60)
        return client

    def stop(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()


@pytest.fixture
def plain_kernel(tmp_path: Path) -> Iterator[PlainKernel]:
    kernel = PlainKernel(tmp_path)
    yield kernel
    kernel.stop()


def test_replay_through_it_prints_what_jupyter_printed_and_leaves_no_trace(plain_kernel: PlainKernel) -> None:
    expected = json.loads((DATA / "seed_autograd.jupyter.json").read_text())
    run = gradrepl("replay", "--json", "--existing", str(plain_kernel.connection_file), str(EXAMPLES / "seed_autograd.py"))
    assert run.returncode == 0, run.stderr
    got = records(run.stdout)
    assert [(g["cell"], without_addresses(g["stdout"]), without_addresses(g["result"])) for g in got] == [
        (w["cell"], without_addresses(w["stdout"]), without_addresses(w["result"])) for w in expected]
    assert got[3]["backward"][0]["nodes"] == ["MeanBackward0", "PowBackward0", "AccumulateGrad"]
    assert plain_kernel.alive()
    # Attached again: the probe is the one put in before, and the history holds only the user's cells.
    question = script(plain_kernel.connection_file.parent, "print(len(In) - 1, sorted(k for k in globals() if 'gradrepl' in k))")
    again = gradrepl("replay", "--json", "--existing", str(plain_kernel.connection_file), str(question))
    (record,) = records(again.stdout)
    assert record["stdout"] == "13 []\n" and record["result"] is None
    assert "varibale" in {t["name"] for t in record["tensors"]}  # the whole table, to a front end that knew none of it


def test_graph_and_check_run_through_it(plain_kernel: PlainKernel, examples_copy: Path) -> None:
    existing = ("--existing", str(plain_kernel.connection_file))
    graph = gradrepl("graph", *existing, str(EXAMPLES / "seed_autograd.py"), "v_out")
    assert graph.returncode == 0 and graph.stdout.splitlines()[1] == "#0 MeanBackward0 → v_out", graph.stdout
    check = gradrepl("check", *existing, str(examples_copy))
    assert check.returncode == 0, check.stdout
    assert check.stdout.splitlines()[-1].endswith(" passed, 0 failed in 10 files")
    assert gradrepl("check", *existing, "-j", "2", str(examples_copy)).returncode == 2
    assert plain_kernel.alive()


def test_shutdown_on_exit_ends_it(plain_kernel: PlainKernel, tmp_path: Path) -> None:
    path = script(tmp_path, "print('bye')")
    run = gradrepl("replay", "--existing", str(plain_kernel.connection_file), "--shutdown-on-exit", str(path))
    assert run.returncode == 0 and "bye" in run.stdout
    assert plain_kernel.process.wait(timeout=30) == 0


def test_ctrl_c_interrupts_its_cell_and_the_kernel_lives_on(plain_kernel: PlainKernel, tmp_path: Path) -> None:
    started = tmp_path / "sleeping"
    path = script(tmp_path, f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(60)", "print('never')")
    run = subprocess.Popen([sys.executable, "-m", "gradrepl", "replay", "--existing", str(plain_kernel.connection_file), str(path)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(started.exists, "the cell started")
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=30)
    assert "KeyboardInterrupt" in out and "never" not in out
    assert err.strip() == "gradrepl: interrupted: the running cell was stopped, the rest not run"
    assert plain_kernel.alive()


def test_a_connection_file_others_can_read_or_that_is_not_one_is_refused(plain_kernel: PlainKernel, tmp_path: Path) -> None:
    path = script(tmp_path, "1")
    shared = tmp_path / "shared.json"
    shared.write_text(plain_kernel.connection_file.read_text())
    shared.chmod(0o644)
    run = gradrepl("replay", "--existing", str(shared), str(path))
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == (f"gradrepl: '{shared}' can be read by other users (mode 0644), and its key runs code in "
                          f"the kernel: chmod 600 '{shared}'\n")
    other = tmp_path / "other.json"
    other.write_text("{}")
    other.chmod(0o600)
    assert gradrepl("replay", "--existing", str(other), str(path)).stderr.startswith(f"gradrepl: '{other}' is not a kernel connection file")
    assert gradrepl("replay", "--existing", str(tmp_path / "nowhere.json"), str(path)).stderr.startswith("gradrepl: no kernel connection file")
    limited = gradrepl("replay", "--existing", str(plain_kernel.connection_file), "--memory-limit", "1G", str(path))
    assert limited.returncode == 2 and "--memory-limit" in limited.stderr


def _tensor_names(outcome: object) -> list[str]:
    (report,) = [e for e in outcome.events if isinstance(e, ProbeReport)]  # type: ignore[attr-defined]
    return [t.name for t in report.tensors]


def test_another_clients_cells_reach_the_tensor_table(plain_kernel: PlainKernel) -> None:
    async def run() -> tuple[list[str], list[str]]:
        session = KernelSession(attach=find_existing(str(plain_kernel.connection_file)))
        await session.start()
        try:
            first = await session.run("import torch\nx = torch.ones(2)")
            notebook = plain_kernel.client()  # a notebook open on the same kernel
            notebook.execute_interactive("y = torch.zeros(3)\ndel x", timeout=30, output_hook=lambda msg: None)
            notebook.stop_channels()
            second = await session.run("z = 1")
        finally:
            await session.shutdown()
        return _tensor_names(first), _tensor_names(second)

    assert asyncio.run(run()) == (["x"], ["y"])


def test_a_kernel_restarted_where_it_runs_gets_the_probe_again(tmp_path: Path) -> None:
    manager = KernelManager(connection_file=str(tmp_path / "kernel-managed.json"))
    manager.start_kernel(cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def run() -> list[list[object]]:
        session = KernelSession(attach=find_existing(manager.connection_file))
        await session.start()
        try:
            before = await session.run("import torch\nx = torch.ones(2)")
            manager.restart_kernel(now=True)  # as Jupyter's restart button does
            after = await session.run("import torch\nw = torch.ones(1)")
        finally:
            await session.shutdown()
        return [[(e.status, e.execution_count) if isinstance(e, CellFinished) else [t.name for t in e.tensors]
                 for e in outcome.events if isinstance(e, CellFinished | ProbeReport)] for outcome in (before, after)]

    try:
        before, after = asyncio.run(run())
    finally:
        manager.shutdown_kernel(now=True)
    assert before == [["x"], ("ok", 1)]
    assert after == [["w"], ("ok", 1)]  # a new kernel: counted from 1 again, and its probe reports


def test_its_death_ends_the_cell_with_the_reason(plain_kernel: PlainKernel) -> None:
    async def run() -> CellFinished:
        session = KernelSession(attach=find_existing(str(plain_kernel.connection_file)))
        await session.start()
        try:
            outcome = await session.run("import os, time\nprint('going', flush=True)\ntime.sleep(0.5)\nos._exit(3)")
        finally:
            await session.shutdown()
        finished = outcome.events[-1]
        assert isinstance(finished, CellFinished)
        return finished

    finished = asyncio.run(run())
    assert (finished.status, finished.reason) == ("died", "the kernel stopped answering its heartbeat (for 3 s)")


def test_the_app_works_in_it_and_quitting_leaves_it_running(
    plain_kernel: PlainKernel, gradrepl_terminal: Callable[..., Terminal]
) -> None:
    app = gradrepl_terminal("--existing", str(plain_kernel.connection_file), env={**os.environ, "NO_COLOR": "1"})
    app.wait_for("idle")
    app.type("import torch\rx = torch.ones(2, requires_grad=True)\r(x * 5).sum().backward()\rprint(x.grad)\r")
    app.wait_for("tensor([5., 5.])", "x.grad fresh")
    app.type(CTRL_Q)
    app.wait_for("Discard and quit")
    assert app.quit(SHIFT_TAB + b"\r") == 0  # from Stay to Discard and quit
    assert plain_kernel.alive()
    client = plain_kernel.client()
    reply = client.execute_interactive("x.grad", timeout=30, output_hook=lambda msg: None)
    client.stop_channels()
    assert reply["content"]["status"] == "ok"


def test_restart_attaches_again_and_never_shuts_an_existing_kernel_down(plain_kernel: PlainKernel) -> None:
    async def run() -> list[str]:
        existing = find_existing(str(plain_kernel.connection_file), shutdown_on_exit=True)
        session = KernelSession(attach=existing)
        await session.start()
        try:
            await session.run("import torch\nkept = torch.ones(1)")
            await session.restart()
            return _tensor_names(await session.run("fresh = 1"))
        finally:
            await session.shutdown()

    assert asyncio.run(run()) == ["kept"]  # its state is kept: gradrepl did not start it
    assert plain_kernel.process.wait(timeout=30) == 0  # and --shutdown-on-exit ends it when done, not at the restart
