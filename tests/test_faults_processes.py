"""Faults around the kernel process and its files (issue 12): a kernel whose code ignores
SIGTERM when its front end is killed, runtime directories left by killed front ends, a
kernel log that grows without bound or cannot be written, no usable temporary directory,
and a HOME that IPython cannot write to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from functools import partial
from pathlib import Path

import pytest

from support.command_line import gradrepl as run_gradrepl
from support.command_line import script
from support.waiting import wait_until

gradrepl = partial(run_gradrepl, timeout=120)

pytestmark = [pytest.mark.faults]

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, pidfds and /proc are Linux's")


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment with a temporary directory of its own: the kernel's runtime
    directory, and whatever else lands in TMPDIR, is there to be looked at."""
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(temp), **extra}
    env.pop("PYTEST_CURRENT_TEST", None)  # under pytest ipykernel leaves fd 1 and 2 alone; users' kernels do not
    return env


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


# ---------------------------------------------------------------- item 2: no kernel outlives its front end

IGNORES_SIGTERM = "signal.signal(signal.SIGTERM, signal.SIG_IGN)"
CHECKPOINTS_ON_SIGTERM = """
def checkpoint(signum, frame):
    open("checkpoint", "w").close()  # and carries on, as training scripts often do
signal.signal(signal.SIGTERM, checkpoint)
"""


@linux_only
@pytest.mark.kernel
@pytest.mark.parametrize("handling", [IGNORES_SIGTERM, CHECKPOINTS_ON_SIGTERM], ids=["ignored", "handled"])
def test_a_kernel_whose_code_keeps_sigterm_dies_with_its_killed_front_end_and_its_dir_goes(
    tmp_path: Path, handling: str
) -> None:
    env = environment(tmp_path)
    pids = tmp_path / "pids"
    cell = textwrap.dedent(f"""
        import multiprocessing, os, signal, time
        {{handling}}
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(600,))
        child.start()
        with open({str(pids)!r}, "w") as out:
            out.write(f"{{os.getpid()}} {{child.pid}}")
        time.sleep(600)
    """).replace("{handling}", textwrap.dedent(handling).strip())
    path = script(tmp_path, cell)
    replay = subprocess.Popen([sys.executable, "-m", "gradrepl", "replay", str(path)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kernel = child = 0
    try:
        wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, "the cell started its child", 120)
        kernel, child = map(int, pids.read_text().split())
        [runtime_dir] = (tmp_path / "tmp").glob("gradrepl-*")
        replay.kill()
        replay.wait(30)
        wait_until(lambda: not is_running(kernel), "the kernel ended with its front end", 20)
        wait_until(lambda: not runtime_dir.exists(), "the kernel's runtime directory was removed", 20)
        wait_until(lambda: not is_running(child), "the kernel's forked child ended with it", 20)
        assert not (tmp_path / "checkpoint").exists()  # SIGKILL: no handler ran
    finally:
        if replay.poll() is None:
            replay.kill()
        for pid in (kernel, child):
            if pid and is_running(pid):
                os.kill(pid, signal.SIGKILL)


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def _runtime_dir(parent: Path, name: str, owner: dict[str, object] | None, mode: int = 0o700) -> Path:
    path = parent / name
    path.mkdir(mode=mode)
    os.chmod(path, mode)
    (path / "kernel.json").write_text("{}")
    if owner is not None:
        (path / "owner.json").write_text(json.dumps(owner))
    return path


@linux_only
def test_only_gradrepl_dirs_whose_front_end_and_kernel_are_gone_are_removed(tmp_path: Path) -> None:
    from gradrepl.client.runtime_dirs import owner_record, remove_stale

    me = owner_record(os.getpid())
    dead = _dead_pid()
    stale = dict(me, frontend=[dead, 1], kernel=[dead, 1])
    reused = dict(me, frontend=[os.getpid(), 1])  # this pid now belongs to a process started at another time
    gone = _runtime_dir(tmp_path, "gradrepl-gone", stale)
    gone_reused = _runtime_dir(tmp_path, "gradrepl-reused", dict(reused, kernel=[dead, 1]))
    kept = [
        _runtime_dir(tmp_path, "gradrepl-live", me),  # its front end runs
        _runtime_dir(tmp_path, "gradrepl-kernel-runs", dict(stale, kernel=me["frontend"])),
        _runtime_dir(tmp_path, "gradrepl-no-owner", None),  # another version's, or one being made
        _runtime_dir(tmp_path, "gradrepl-open", stale, mode=0o755),
        _runtime_dir(tmp_path, "gradrepl-elsewhere", dict(stale, pidns="pid:[1]")),  # another pid namespace
        _runtime_dir(tmp_path, "other-gone", stale),
    ]
    (tmp_path / "gradrepl-garbled").mkdir(mode=0o700)
    (tmp_path / "gradrepl-garbled" / "owner.json").write_text("{not json")
    (tmp_path / "gradrepl-link").symlink_to(gone_reused)
    (tmp_path / "gradrepl-file").write_text("")
    kept += [tmp_path / "gradrepl-garbled", tmp_path / "gradrepl-link", tmp_path / "gradrepl-file"]

    removed = remove_stale(tmp_path)

    assert sorted(removed) == sorted([gone, gone_reused])
    assert not gone.exists() and not gone_reused.exists()
    assert all(os.path.lexists(path) for path in kept)


@linux_only
@pytest.mark.kernel
def test_a_front_end_that_starts_removes_the_dir_a_killed_one_left(tmp_path: Path) -> None:
    from gradrepl.client.runtime_dirs import owner_record

    env = environment(tmp_path)
    dead = _dead_pid()
    left = _runtime_dir(tmp_path / "tmp", "gradrepl-left", dict(owner_record(os.getpid()), frontend=[dead, 1]))
    done = gradrepl("replay", str(script(tmp_path, "print(1)")), env=env)
    assert done.returncode == 0, done.stderr
    assert not left.exists()
    assert list((tmp_path / "tmp").iterdir()) == []


# ---------------------------------------------------------------- item 4: a bounded kernel log that never blocks

def _feed(fd: int, total: int, chunk: bytes) -> threading.Thread:
    def write() -> None:
        sent = 0
        while sent < total:
            sent += os.write(fd, chunk)
        os.close(fd)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


def test_the_kernel_log_keeps_two_capped_files_and_a_tail_in_memory(tmp_path: Path) -> None:
    from gradrepl.client.kernel_log import KernelLog

    read, write = os.pipe()
    log = KernelLog(read, tmp_path / "kernel.log", file_limit=100_000)
    writer = _feed(write, 1_000_000, b"x" * 999 + b"\n")
    writer.join(30)
    assert not writer.is_alive()
    wait_until(lambda: log.size() == 1_000_000, "the log read all that was written", 30)
    log.close()
    sizes = {path.name: path.stat().st_size for path in tmp_path.iterdir()}
    assert set(sizes) == {"kernel.log", "kernel.log.1"}
    assert sizes["kernel.log.1"] == 100_000 and 0 < sizes["kernel.log"] <= 100_000
    assert log.tail(5000) == (b"x" * 999 + b"\n") * 5


@linux_only
def test_a_kernel_log_that_cannot_be_written_keeps_reading(tmp_path: Path) -> None:
    from gradrepl.client.kernel_log import KernelLog

    (tmp_path / "kernel.log").symlink_to("/dev/full")  # every write: ENOSPC, as on a full /tmp
    read, write = os.pipe()
    log = KernelLog(read, tmp_path / "kernel.log")
    writer = _feed(write, 8_000_000, b"y" * 65_536)
    writer.join(30)
    assert not writer.is_alive(), "the writer blocked: the log stopped reading when it could not write"
    wait_until(lambda: log.size() >= 8_000_000, "the log read all that was written", 30)
    log.close()
    assert log.tail(10) == b"y" * 10
    assert log.dropped >= 8_000_000


@pytest.mark.kernel
def test_the_kernel_log_stays_bounded_when_a_cell_floods_fd_1(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import os
        for _ in range(80):
            os.write(1, b"x" * 65_535 + b"\\n")
        """,
        """
        import ipykernel, pathlib
        here = pathlib.Path(ipykernel.get_connection_file()).parent
        print(sum(p.stat().st_size for p in here.glob("kernel.log*")))
        """,
    )
    done = gradrepl("replay", "--json", str(path), env=environment(tmp_path))
    assert done.returncode == 0, done.stderr
    [first, second] = [json.loads(line) for line in done.stdout.splitlines()]
    assert first["status"] == "ok" and second["status"] == "ok"
    assert 0 < int(second["stdout"]) <= 2 * (1 << 20)


def _file_size_limit(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.kernel
def test_a_kernel_log_that_cannot_grow_never_blocks_a_cell_writing_to_fd_1(tmp_path: Path) -> None:
    # RLIMIT_FSIZE on the front end (and so on its kernel): a write past 100 kB fails with
    # EFBIG, as one on a full /tmp fails with ENOSPC. Python ignores SIGXFSZ.
    path = script(tmp_path, "import os\nfor _ in range(40):\n    os.write(1, b'y' * 16_384)\nprint('done')")
    done = gradrepl("replay", "--json", "--cell-timeout", "60", str(path), env=environment(tmp_path),
                    preexec_fn=lambda: _file_size_limit(100_000))
    assert done.returncode == 0, done.stderr
    [record] = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["status"] == "ok"
    assert record["stdout"].count("y") == 40 * 16_384 and "done\n" in record["stdout"]  # the cell lost nothing


# ---------------------------------------------------------------- item 11: no usable temporary directory

NO_TEMP_DIR = """
import sys, tempfile
tempfile.tempdir = None
tempfile._candidate_tempdir_list = lambda: [{missing!r}]  # as TMPDIR missing and /tmp, /var/tmp, cwd unusable
from gradrepl.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", [["replay"], ["graph"], []], ids=["replay", "graph", "app"])
def test_no_usable_temporary_directory_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    missing = str(tmp_path / "missing")
    path = script(tmp_path, "import os\nx = 1")
    done = subprocess.run([sys.executable, "-c", NO_TEMP_DIR.format(missing=missing), *command, str(path)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, "TMPDIR": missing})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("gradrepl: no usable temporary directory") and missing in done.stderr
    assert "TMPDIR" in done.stderr


# ---------------------------------------------------------------- item 20: a HOME IPython cannot write to

@pytest.mark.kernel
def test_a_home_ipython_cannot_write_to_leaves_no_temporary_folders(tmp_path: Path) -> None:
    # A HOME that does not exist (as for system users: HOME=/nonexistent) is one IPython
    # cannot make .ipython in, as a read-only one is; the latter needs privileges to set up.
    env = environment(tmp_path, HOME=str(tmp_path / "nonexistent"))
    env.pop("IPYTHONDIR", None)
    path = script(tmp_path, "import IPython\nprint(IPython.paths.get_ipython_dir())")
    for _ in range(2):
        done = gradrepl("replay", "--json", str(path), env=env)
        assert done.returncode == 0, done.stderr
        [record] = [json.loads(line) for line in done.stdout.splitlines()]
        assert "gradrepl-" in record["stdout"], record  # inside the kernel's runtime directory
    assert list((tmp_path / "tmp").iterdir()) == []
