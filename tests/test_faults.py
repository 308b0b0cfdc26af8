"""Faults and bad input: code that loops, crashes, floods or fights the probe, and files
that cannot be read. gradrepl keeps working, loses nothing and says what happened in one
line. (`scripts/test -m faults` runs just this group; CI runs it with everything else.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradrepl.ui.app import GradReplApp
from gradrepl.ui.state.history import History
from gradrepl.ui.state.journal import Journal
from gradrepl.ui.widgets.code_input import CodeInput
from support.command_line import gradrepl, records, script
from support.waiting import until, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.kernel]

SIZE = (120, 40)


def app_for(tmp_path: Path, **kwargs) -> GradReplApp:
    return GradReplApp(history=History(None), cwd=tmp_path, stable=True, journal=Journal(None), **kwargs)


async def run_cell(app: GradReplApp, pilot, source: str) -> None:
    app.query_one(CodeInput).load_text(source)
    await pilot.press("ctrl+r")
    await app.until_idle()
    await pilot.pause()


def looping(app: GradReplApp) -> bool:
    """Whether the running cell has printed "looping" (its loop starts right after)."""
    cell = app.runner.running
    return cell is not None and any("looping" in getattr(event, "text", "") for event in cell.events)


# ---------------------------------------------------------------- interrupt and timeouts


async def test_ctrl_c_stops_a_loop_of_torch_ops_and_earlier_names_survive(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.until_idle()
        await run_cell(app, pilot, "import torch\na = torch.randn(200, 200)\nkept = 7")
        app.query_one(CodeInput).load_text("print('looping', flush=True)\nwhile True:\n    a = torch.tanh(a @ a)")
        await pilot.press("ctrl+r")
        await until(lambda: looping(app), "the loop starting")
        await pilot.press("ctrl+c")
        await until(lambda: app.runner.running is None, "the cell ending on ctrl+c")
        await app.until_idle()
        await pilot.pause()
        cell = app.worksheet.cells[-1]
        assert cell.state == "error" and cell.outcome.error.ename == "KeyboardInterrupt"
        await run_cell(app, pilot, "kept, a.shape")
        assert app.worksheet.cells[-1].outcome.result.text == "(7, torch.Size([200, 200]))"


async def test_the_apps_cell_timeout_interrupts_and_says_timeout(tmp_path: Path) -> None:
    app = app_for(tmp_path, cell_timeout=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await app.until_idle()
        await run_cell(app, pilot, "kept = 1")
        await run_cell(app, pilot, "import time\nwhile True:\n    time.sleep(0.01)")
        cell = app.worksheet.cells[-1]
        assert cell.state == "timeout" and cell.reason == "interrupted after 1 s"
        await run_cell(app, pilot, "kept + 1")
        assert app.worksheet.cells[-1].outcome.result.text == "2"


def test_replay_cell_timeout_reports_timeout_and_stops(tmp_path: Path) -> None:
    path = script(tmp_path, "x = 1", "while True:\n    pass", "print('never')")
    done = gradrepl("replay", "--json", "--cell-timeout", "1", str(path))
    assert done.returncode == 1
    assert [(r["cell"], r["status"]) for r in records(done.stdout)] == [(1, "ok"), (2, "timeout")]
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- kernel death


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import os\nos._exit(1)", "the kernel exited with code 1"),
        ("import ctypes\nctypes.string_at(0)", "the kernel was killed by SIGSEGV"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "the kernel was killed by SIGKILL"),
    ],
)
def test_replay_reports_a_dead_kernel_as_died_without_a_traceback(tmp_path: Path, code: str, reason: str) -> None:
    path = script(tmp_path, "x = 1", code, "print('never')")
    done = gradrepl("replay", "--json", "--keep-going", str(path))
    assert done.returncode == 1
    cells = records(done.stdout)
    assert [(r["cell"], r["status"]) for r in cells] == [(1, "ok"), (2, "died")]
    assert cells[1]["reason"] == reason
    assert "Traceback" not in done.stderr
    text = gradrepl("replay", str(path))
    assert f"[kernel died: {reason}]" in text.stdout and "Traceback" not in text.stderr


# ---------------------------------------------------------------- hostile code


HOSTILE = (
    """
    import torch
    class Weird(torch.Tensor):
        pass
    w = torch.ones(2, requires_grad=True).as_subclass(Weird)
    class BadRepr:
        def __repr__(self):
            raise RuntimeError("no repr")
    bad = BadRepr()
    cycle = [torch.ones(1)]
    cycle.append(cycle)
    d = {"t": torch.zeros(2)}
    d["self"] = d
    t = torch.ones(3, requires_grad=True)
    print = len = repr = getattr = isinstance = type = str = None
    del torch
    """,
    "(t * 2).sum().backward()",
    "for i in range(100000):\n    globals()[f'v{i}'] = i",
    "bad",
)


def test_hostile_code_does_not_break_the_probe_or_the_backward_log(tmp_path: Path) -> None:
    done = gradrepl("replay", "--json", "--keep-going", str(script(tmp_path, *HOSTILE)))
    cells = records(done.stdout)
    assert [c["status"] for c in cells] == ["ok", "ok", "ok", "error"]
    assert [t["name"] for t in cells[0]["tensors"]] == ["w", "cycle[0]", "d['t']", "t"]
    assert cells[0]["tensors"][0]["type"] == "Weird"
    assert cells[1]["backward"][0]["leaves"][0]["name"] == "t"
    assert [t["name"] for t in cells[2]["tensors"]] == ["w", "cycle[0]", "d['t']", "t"]  # 100,000 names later
    assert cells[3]["error"]["ename"] == "RuntimeError"  # the user's repr, shown as Jupyter shows it
    assert "Traceback" not in done.stderr


def test_a_container_too_long_to_list_says_so(tmp_path: Path) -> None:
    done = gradrepl("replay", "--json", str(script(tmp_path, "import torch\nbig = [torch.ones(1) for _ in range(100)]")))
    cell = records(done.stdout)[0]
    assert len([t for t in cell["tensors"] if t["name"].startswith("big[")]) == 64
    assert "big: the first 64 of its 100 items are listed" in cell["notes"]


# ---------------------------------------------------------------- bad files


@pytest.mark.parametrize("command", [("replay",), (), ("graph",)])
def test_an_unreadable_script_is_one_line_and_exit_2(tmp_path: Path, command: tuple[str, ...],
                                                       monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from gradrepl import cli

    path = tmp_path / "locked.py"
    path.write_text("# %%\nx = 1\n")
    path.chmod(0)
    from gradrepl.cells import reading

    real_open = reading._open

    def open_file(where: Path) -> int:  # what a user without the permission gets (tests may run as root)
        if where == path:
            raise PermissionError(13, "Permission denied", str(where))
        return real_open(where)

    monkeypatch.setattr(reading, "_open", open_file)
    assert cli.main([*command, str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"gradrepl: cannot read '{path}': permission denied\n"


# ---------------------------------------------------------------- huge output


def test_replay_cuts_a_50_mb_output_and_says_how_much(tmp_path: Path) -> None:
    path = script(tmp_path, "print('x' * 50_000_000)", "print('after')")
    done = gradrepl("replay", "--json", str(path))
    assert done.returncode == 0
    first, second = records(done.stdout)
    assert len(first["stdout"]) == 1_000_000 and first["stdout"] == "x" * 1_000_000
    assert first["notes"] == ["output cut: the cell printed 50.0 million characters; the first 1.0 million characters are kept"]
    assert second["stdout"] == "after\n" and second["notes"] == []
    text = gradrepl("replay", str(path)).stdout
    assert "[gradrepl: output cut: the cell printed 50.0 million characters; the first 1.0 million characters are kept]" in text
    assert len(text) < 1_100_000


async def test_the_app_cuts_a_huge_output_folds_it_and_stays_responsive(tmp_path: Path) -> None:
    from gradrepl.ui.widgets.output_block import OutputBlock

    app = app_for(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.until_idle()
        await run_cell(app, pilot, "print('x' * 50_000_000)")
        view = app.transcript.view_of(app.worksheet.cells[-1])
        notes = [str(n.render()) for n in view.query(".note")]
        assert notes == ["output cut: the cell printed 50.0 million characters; the first 1.0 million characters are kept"]
        fold = view.query_one(OutputBlock)
        assert not fold.expanded and fold.fold_title == "▶ 976 more lines"  # 1,000 lines of 1,000 characters
        await pilot.press("a", "b")
        assert app.query_one(CodeInput).text == "ab"


@pytest.mark.parametrize("loop", ["while True:\n    pass", "import torch\na = torch.randn(300, 300)\nwhile True:\n    a = torch.tanh(a @ a)"])
def test_ctrl_c_during_replay_stops_the_running_cell_and_the_replay(tmp_path: Path, loop: str) -> None:
    looping = tmp_path / "looping"  # made by cell 2 as its loop starts
    started = f"__import__('pathlib').Path({str(looping)!r}).touch()\nwhile True:"
    path = script(tmp_path, "x = 1", loop.replace("while True:", started, 1), "print('never')")
    replay = subprocess.Popen(
        [sys.executable, "-m", "gradrepl", "replay", "--json", "--keep-going", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        first = json.loads(replay.stdout.readline())
        assert first["status"] == "ok"
        wait_until(looping.exists, "cell 2 starting its loop")
        replay.send_signal(signal.SIGINT)
        out, err = replay.communicate(timeout=30)
    finally:
        replay.kill()
    cells = records(out)
    assert replay.returncode == 130
    assert [(c["cell"], c["status"], c["error"]["ename"]) for c in cells] == [(2, "error", "KeyboardInterrupt")]
    assert err == "gradrepl: interrupted: the running cell was stopped, the rest not run\n"


# ---------------------------------------------------------------- memory limit


def test_a_cell_over_the_memory_limit_fails_and_the_kernel_lives_on(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "import torch\nkept = 41",
        "torch.empty(10**11)",
        "bytearray(10**11)",
        "grow = []\nwhile True:\n    grow.append(bytes(10**7))",  # calloc: address space, not memory touched
        "print(kept + 1, len(grow) * 10**7 < 2 * 2**30)\ndel grow",
    )
    done = gradrepl("replay", "--json", "--keep-going", "--memory-limit", "2G", str(path))
    cells = records(done.stdout)
    assert [c["status"] for c in cells] == ["ok", "error", "error", "error", "ok"], done.stderr
    assert [c["error"]["ename"] for c in cells[1:4]] == ["RuntimeError", "MemoryError", "MemoryError"]
    assert "can't allocate memory" in cells[1]["error"]["evalue"]
    for cell in cells[1:4]:
        assert "gradrepl: out of memory under --memory-limit 2G" in cell["stderr"]
    assert cells[4]["stdout"] == "42 True\n" and cells[4]["stderr"] == ""


def test_without_a_memory_limit_the_same_cell_is_not_limited(tmp_path: Path) -> None:
    path = script(tmp_path, "import resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY)")
    done = gradrepl("replay", "--json", str(path))
    assert records(done.stdout)[0]["stdout"] == "True\n"


def test_a_memory_limit_too_small_to_start_the_kernel_says_so_in_one_line(tmp_path: Path) -> None:
    done = gradrepl("replay", "--memory-limit", "20M", str(script(tmp_path, "x = 1")))
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradrepl: the kernel exited while starting (")
    assert lines[0].endswith(": --memory-limit 20M is likely too small for it")


def test_memory_sizes_accept_units_in_either_case() -> None:
    from gradrepl.cli import _size

    assert _size("512M") == 512 << 20 and _size("512m") == 512 << 20
    assert _size("4G") == 4 << 30 and _size("2.5g") == int(2.5 * (1 << 30))
    assert _size("1000000") == 1_000_000 and _size("8k") == 8192 and _size("1T") == 1 << 40


@pytest.mark.parametrize("command", [("replay",), (), ("graph",)])
@pytest.mark.parametrize("size", ["lots", "0", "-1G", "12Q", "G", "1e9", ""])
def test_a_bad_memory_limit_is_a_usage_error(tmp_path: Path, command: tuple[str, ...], size: str, capsys) -> None:
    from gradrepl import cli

    with pytest.raises(SystemExit) as exit:
        cli.main([*command, f"--memory-limit={size}", str(script(tmp_path, "x = 1"))])
    assert exit.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    errors = [line for line in err.splitlines() if "error:" in line]
    assert errors == [err.splitlines()[-1]]
    assert f"error: argument --memory-limit: not a size such as 512M, 4G or 1000000 (bytes): {size!r}" in errors[0]


def test_the_app_gets_the_kernel_environment_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from gradrepl import cli
    from gradrepl.client import process as kernel_process
    from gradrepl.protocol import BACKWARD_LOG_ENV, MEMORY_LIMIT_ENV

    launched: list[dict[str, str] | None] = []
    made: list[dict] = []

    class Process:
        def is_alive(self) -> bool:
            return False

        def cleanup(self) -> None:
            pass

    class App:
        def __init__(self, script, **kwargs) -> None:
            made.append(kwargs)

        def run(self) -> int:
            return 0

    def launch_kernel(*, cwd=None, extra_env=None):
        launched.append(extra_env)
        return Process()

    monkeypatch.setattr(kernel_process, "launch_kernel", launch_kernel)
    monkeypatch.setattr("gradrepl.ui.app.GradReplApp", App)
    monkeypatch.setattr(cli, "_end_with_the_terminal", lambda app, process, terminal: None)
    assert cli.main(["--memory-limit", "3G", "--no-backward-log"]) == 0
    expected = {MEMORY_LIMIT_ENV: str(3 << 30), BACKWARD_LOG_ENV: "0"}
    assert launched == [expected] and made[0]["kernel_env"] == expected


LIMITS = "import os, resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0], os.environ.get('GRADREPL_BACKWARD_LOG'))"


async def test_a_restarted_kernel_keeps_the_memory_limit_and_the_backward_log_setting(tmp_path: Path) -> None:
    from gradrepl.protocol import BACKWARD_LOG_ENV, MEMORY_LIMIT_ENV

    app = app_for(tmp_path, kernel_env={MEMORY_LIMIT_ENV: str(3 << 30), BACKWARD_LOG_ENV: "0"})
    async with app.run_test(size=SIZE) as pilot:
        await app.until_idle()
        await run_cell(app, pilot, LIMITS)
        first = app.runner.session.process.pid
        assert app.worksheet.cells[-1].outcome.stream_text("stdout") == f"{3 << 30} 0\n"
        await app.run_action("restart_kernel")
        for worker in [w for w in app.workers if w.group == "kernel-control"]:
            await worker.wait()
        await app.until_idle()
        await run_cell(app, pilot, LIMITS)
        assert app.runner.session.process.pid != first
        assert app.worksheet.cells[-1].outcome.stream_text("stdout") == f"{3 << 30} 0\n"


# ---------------------------------------------------------------- the kernel does not outlive its front end


def _gated_replay(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int, Path, int]:
    """A replay whose second cell waits on a FIFO: returns the replay, its kernel's pid and
    runtime directory, and the FIFO's write end, opened once the kernel is inside that cell."""
    import threading

    gate = tmp_path / "gate"
    os.mkfifo(gate)
    path = script(tmp_path, "x = 1", f"with open({str(gate)!r}) as gate:\n    gate.read()")
    replay = subprocess.Popen([sys.executable, "-m", "gradrepl", "replay", *extra, str(path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    opened: list[int] = []
    opener = threading.Thread(target=lambda: opened.append(os.open(gate, os.O_WRONLY)), daemon=True)
    opener.start()
    opener.join(120)
    if not opened:  # unblock the opener and fail
        os.close(os.open(gate, os.O_RDONLY | os.O_NONBLOCK))
        replay.kill()
        pytest.fail(f"the kernel never reached the gated cell: {replay.communicate()}")
    children = Path(f"/proc/{replay.pid}/task/{replay.pid}/children").read_text().split()
    kernels = [int(c) for c in children if b"gradrepl.inkernel.launch" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(kernels) == 1
    argv = Path(f"/proc/{kernels[0]}/cmdline").read_bytes().split(b"\0")
    runtime_dir = Path(os.fsdecode(argv[argv.index(b"-f") + 1])).parent
    return replay, kernels[0], runtime_dir, opened[0]


def _exits_within(pid: int, seconds: float) -> bool:
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], seconds)[0])
    finally:
        os.close(fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_kernel_whose_replay_is_killed_ends_and_removes_its_runtime_dir(tmp_path: Path) -> None:
    import contextlib

    replay, kernel, runtime_dir, gate = _gated_replay(tmp_path)
    try:
        assert runtime_dir.name.startswith("gradrepl-") and (runtime_dir / "kernel.json").exists()
        replay.kill()
        replay.communicate()
        assert _exits_within(kernel, 10), "the kernel outlived its front end"
        wait_until(lambda: not runtime_dir.exists(), "its watcher removing the runtime dir", 10)
    finally:
        os.close(gate)
        with contextlib.suppress(ProcessLookupError):
            os.kill(kernel, signal.SIGKILL)


# ---------------------------------------------------------------- security: no network, private files


def _socket_inodes(pid: int) -> set[int]:
    import contextlib

    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(int(target[len("socket:["):-1]))
    return inodes


def _inet_inodes() -> set[int]:
    import contextlib

    inodes = set()
    for table in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                inodes.add(int(line.split()[9]))
    return inodes


def _listening_unix_paths(inodes: set[int]) -> list[str]:
    paths = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[6]) in inodes and int(fields[3], 16) & 0x10000:  # __SO_ACCEPTCON: listening
            paths.append(fields[7] if len(fields) > 7 else "")
    return paths


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_network_socket_is_open_and_the_kernel_listens_only_in_its_private_dir(tmp_path: Path) -> None:
    import stat

    replay, kernel, runtime_dir, gate = _gated_replay(tmp_path)
    try:
        kernel_sockets, front_sockets = _socket_inodes(kernel), _socket_inodes(replay.pid)
        assert kernel_sockets and front_sockets
        assert not (kernel_sockets | front_sockets) & _inet_inodes()
        listening = _listening_unix_paths(kernel_sockets)
        assert sorted(listening) == sorted(f"{runtime_dir}/k-{n}" for n in (1, 2, 3, 4, 5, "pipe"))
        assert _listening_unix_paths(front_sockets) == []
        assert stat.S_IMODE(runtime_dir.stat().st_mode) == 0o700 and runtime_dir.stat().st_uid == os.getuid()
        connection = runtime_dir / "kernel.json"
        assert stat.S_IMODE(connection.stat().st_mode) == 0o600
        info = json.loads(connection.read_text())
        assert info["transport"] == "ipc" and info["signature_scheme"] == "hmac-sha256"
        assert len(info["key"]) == 64 and int(info["key"], 16) >= 0
    finally:
        os.close(gate)  # the cell ends; so does the replay, normally
    _, err = replay.communicate(timeout=120)
    assert replay.returncode == 0, err
    assert not runtime_dir.exists()


def test_every_kernel_gets_a_fresh_key(tmp_path: Path) -> None:
    from gradrepl.client.process import launch_kernel

    keys = []
    for _ in range(2):
        process = launch_kernel(cwd=tmp_path, extra_env={"PYTHONPATH": ""})
        try:
            keys.append(json.loads(process.connection_file.read_text())["key"])
        finally:
            process.kill()
            process.cleanup()
    assert keys[0] != keys[1]


async def test_the_kernel_ignores_a_message_with_a_wrong_signature(tmp_path: Path) -> None:
    from jupyter_client.session import Session

    from gradrepl.client.session import KernelSession

    session = KernelSession(cwd=tmp_path)
    await session.start()
    try:
        forged = Session(key=b"0" * 64, signature_scheme="hmac-sha256")
        marker = tmp_path / "forged"
        forged.send(session.client.shell_channel.socket, "execute_request",
                    {"code": f"open({str(marker)!r}, 'w').close()", "silent": False})
        outcome = await session.run("40 + 2")  # the same socket: handled after the forged one
        assert outcome.result is not None and outcome.result.text == "42"
        assert not marker.exists()
    finally:
        await session.shutdown()


async def test_forked_children_still_print_and_sigterm_in_a_child_spares_the_kernel(tmp_path: Path) -> None:
    from gradrepl.client.session import KernelSession

    session = KernelSession(cwd=tmp_path)
    await session.start()
    try:
        outcome = await session.run(textwrap.dedent("""
            import multiprocessing, time
            fork = multiprocessing.get_context("fork")
            child = fork.Process(target=print, args=("from the child",))
            child.start(); child.join()
            codes = []
            for _ in range(10):  # terminated at once: a SIGTERM before the child is set up must not be lost
                sleeper = fork.Process(target=time.sleep, args=(60,))
                sleeper.start(); sleeper.terminate(); sleeper.join()
                codes.append(sleeper.exitcode)
            print(child.exitcode, set(codes))
        """))
        assert outcome.stream_text("stdout") == "from the child\n0 {-15}\n"
        assert session.process.runtime_dir.exists() and session.alive
    finally:
        await session.shutdown()


def test_a_repr_that_sleeps_never_holds_up_the_probe_and_its_display_obeys_the_timeout(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import time, torch
        class Slow:
            def __repr__(self):
                time.sleep(60)
                return "slow"
        slow = Slow()
        shelf = [slow, torch.ones(2)]
        print("defined")
        """,
        "slow",  # IPython shows the value by calling its repr, as Jupyter would
        "print(shelf[1].sum().item())",
    )
    # 10 s: the first cell imports torch, which takes over 3 s on a loaded 2-core machine
    done = gradrepl("replay", "--json", "--keep-going", "--cell-timeout", "10", str(path))
    cells = records(done.stdout)
    assert [(c["status"], c["stdout"]) for c in cells] == [("ok", "defined\n"), ("timeout", ""), ("ok", "2.0\n")]
    assert [t["name"] for t in cells[0]["tensors"]] == ["shelf[1]"]
