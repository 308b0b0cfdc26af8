"""`--sandbox`'s limits and its lock: processes, open files, file size and CPU time per cell,
none of which the kernel can raise again, nor lift its confinement by calling the kernel
itself (ctypes); and the kernel's life under it (interrupt, restart, memory limit, death)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from gradrepl.client.events import CellFinished
from gradrepl.client.session import KernelSession
from gradrepl.protocol import MEMORY_LIMIT_ENV, SANDBOX_ENV, SandboxRequest
from support.command_line import gradrepl, records, script
from test_sandbox import REFUSED, SANDBOX, as_another_user, sandboxed

pytestmark = pytest.mark.kernel

LIMITS_LOCKED = "gradrepl: the sandbox's limits cannot be raised from inside the kernel"


def test_limits_are_set_and_raising_them_back_is_refused(tmp_path: Path) -> None:
    cells = sandboxed(
        tmp_path,
        "import resource\nfor name in ('NOFILE', 'FSIZE', 'CORE'):\n    print(name, *resource.getrlimit(getattr(resource, 'RLIMIT_' + name)))",
        "resource.setrlimit(resource.RLIMIT_NOFILE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))",
        "resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))",
        "soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)\nresource.setrlimit(resource.RLIMIT_NPROC, (soft, hard + 1))",
        "resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))",
        "for name in ('NOFILE', 'FSIZE'):\n    print(name, *resource.getrlimit(getattr(resource, 'RLIMIT_' + name)))",
        extra=("--sandbox-limit", "open-files=200", "--sandbox-limit", "file-size=1M"),
    )
    assert cells[0]["stdout"] == "NOFILE 200 200\nFSIZE 1048576 1048576\nCORE 0 0\n"
    for cell in cells[1:5]:
        assert cell["error"]["ename"] == "ValueError" and cell["stderr"].startswith(LIMITS_LOCKED), cell
    assert cells[5]["stdout"] == cells[0]["stdout"].replace("CORE 0 0\n", "")


def test_the_kernel_holds_no_capability_even_as_root(tmp_path: Path) -> None:
    cells = sandboxed(tmp_path, "status = open('/proc/self/status').read()\n"
                                "print({line.split()[0]: line.split()[1] for line in status.splitlines() if line.startswith(('Cap', 'NoNewPrivs'))})")
    shown = eval(cells[0]["stdout"])
    assert shown["NoNewPrivs:"] == "1"
    assert {shown[key] for key in ("CapInh:", "CapPrm:", "CapEff:", "CapAmb:")} == {"0000000000000000"}
    if os.getuid() == 0:  # root regains what the bounding set holds when it runs a program: emptied
        assert shown["CapBnd:"] == "0000000000000000"


def test_a_file_past_the_size_limit_fails_and_is_said_and_the_kernel_lives(tmp_path: Path) -> None:
    cells = sandboxed(tmp_path, "f = open('big.bin', 'wb')\nf.write(b'x' * (3 << 20))\nf.flush()", "print('alive')",
                      extra=("--sandbox-limit", "file-size=1M"))
    assert cells[0]["error"]["ename"] == "OSError" and "File too large" in cells[0]["error"]["evalue"]
    assert cells[0]["stderr"] == "gradrepl: the sandbox limits a file to 1M (--sandbox-limit file-size=SIZE)\n"
    assert cells[1]["stdout"] == "alive\n"
    assert (tmp_path / "lesson" / "big.bin").stat().st_size <= 1 << 20


def test_open_files_past_the_limit_fail_and_are_said(tmp_path: Path) -> None:
    cells = sandboxed(tmp_path, "import os\nfiles = [open(os.devnull) for _ in range(500)]", extra=("--sandbox-limit", "open-files=300"))
    assert cells[0]["error"]["ename"] == "OSError" and "Too many open files" in cells[0]["error"]["evalue"]
    assert cells[0]["stderr"] == "gradrepl: the sandbox lets the kernel open 300 files at once (--sandbox-limit open-files=300)\n"


def test_processes_past_the_limit_are_refused_and_said() -> None:
    with as_another_user() as (folder, run):
        path = script(folder, "import subprocess\nchildren = []\ntry:\n    for _ in range(300):\n        children.append(subprocess.Popen(['sleep', '30']))\n"
                              "finally:\n    print(len(children))\n    for child in children:\n        child.kill()\n        child.wait()")
        path.chmod(0o644)
        done = run("replay", "--json", "--sandbox", "--sandbox-limit", "processes=20", str(path))
    cell = records(done.stdout)[0]
    assert cell["error"]["ename"] == "BlockingIOError", cell
    assert int(cell["stdout"]) < 60  # that user's other processes come and go: not exactly 20
    assert cell["stderr"] == "gradrepl: the sandbox lets the kernel start 20 processes and threads (--sandbox-limit processes=20)\n"


def test_ctypes_calls_cannot_lift_the_confinement(tmp_path: Path) -> None:
    outside = tmp_path / "escaped.txt"
    cells = sandboxed(
        tmp_path,
        "import ctypes, ctypes.util, os\nlibc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)\n"
        "print(libc.prctl(38, 0, 0, 0, 0), ctypes.get_errno())",  # PR_SET_NO_NEW_PRIVS back to 0: EINVAL
        # A new Landlock layer that handles nothing allows nothing more: layers only narrow.
        "class Attr(ctypes.Structure):\n    _fields_ = [('fs', ctypes.c_uint64), ('net', ctypes.c_uint64), ('scoped', ctypes.c_uint64)]\n"
        "attr = Attr(1, 0, 0)\nfd = libc.syscall(444, ctypes.byref(attr), ctypes.sizeof(attr), 0)\n"
        "print(fd >= 0, libc.syscall(446, fd, 0))",
        f"open({str(outside)!r}, 'w').write('no')",
        # capset(2) asking for every capability back
        "class Header(ctypes.Structure):\n    _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]\n"
        "class Data(ctypes.Structure):\n    _fields_ = [('e', ctypes.c_uint32), ('p', ctypes.c_uint32), ('i', ctypes.c_uint32)]\n"
        "full = (Data * 2)(Data(0xffffffff, 0xffffffff, 0), Data(0xffffffff, 0xffffffff, 0))\n"
        "print(libc.capset(ctypes.byref(Header(0x20080522, 0)), full), ctypes.get_errno())",
        "import resource\nprint(libc.setrlimit(resource.RLIMIT_NOFILE, ctypes.byref((ctypes.c_ulong * 2)(1 << 20, 1 << 20))), ctypes.get_errno())",
        f"open({str(outside)!r}, 'w').write('no')",
    )
    assert cells[0]["stdout"] == "-1 22\n"  # EINVAL: no_new_privs cannot be unset
    assert cells[1]["stdout"] == "True 0\n"  # the extra layer went on
    assert cells[3]["stdout"] == "-1 1\n"  # EPERM
    assert cells[4]["stdout"] == "-1 1\n"  # EPERM: no raising the hard limit from C either
    for cell in (cells[2], cells[5]):
        assert cell["error"]["ename"] == "PermissionError" and cell["stderr"].startswith(REFUSED), cell
    assert not outside.exists()


def test_no_signal_reaches_a_process_outside_the_sandbox(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        cells = sandboxed(tmp_path, f"import os, signal\nos.kill({other.pid}, signal.SIGTERM)")
        assert cells[0]["error"]["ename"] == "PermissionError"
        assert cells[0]["stderr"].startswith("gradrepl: the sandbox refused this: no signals to processes outside the kernel")
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_cell_past_its_cpu_time_is_interrupted_and_the_next_one_runs(tmp_path: Path) -> None:
    run = gradrepl("replay", "--json", "--keep-going", SANDBOX, "--sandbox-limit", "cpu=1",
                   str(script(tmp_path, "while True:\n    pass", "print('next')")))
    cells = records(run.stdout)
    assert cells[0]["status"] == "timeout" and cells[0]["error"]["ename"] == "KeyboardInterrupt"
    assert cells[0]["reason"].startswith("interrupted after ") and "of CPU time (the sandbox allows 1 s a cell" in cells[0]["reason"]
    assert cells[1]["stdout"] == "next\n"


def test_cpu_time_is_watched_in_a_cell_that_prints_and_not_counted_in_one_that_sleeps(tmp_path: Path) -> None:
    busy = "import time\nwhile True:\n    print('.', flush=True)\n    start = time.perf_counter()\n    while time.perf_counter() - start < 0.02:\n        pass"
    run = gradrepl("replay", "--json", "--keep-going", SANDBOX, "--sandbox-limit", "cpu=1",
                   str(script(tmp_path, busy, "time.sleep(2.5)\nprint('slept')")))
    cells = records(run.stdout)
    assert cells[0]["status"] == "timeout" and "of CPU time" in cells[0]["reason"]
    assert cells[1]["status"] == "ok" and cells[1]["stdout"] == "slept\n"  # 2.5 s of wall time, hardly any CPU


def test_without_the_sandbox_cpu_time_is_not_watched(tmp_path: Path) -> None:
    run = gradrepl("replay", "--json", str(script(tmp_path, "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.5:\n    pass\nprint('done')")))
    assert records(run.stdout)[0]["stdout"] == "done\n"


def _sandboxed_session(folder: Path, memory: int = 2 << 30) -> KernelSession:
    request = SandboxRequest("best-effort" if os.getuid() == 0 else "strict", (str(folder),))
    return KernelSession(cwd=folder, env={SANDBOX_ENV: request.to_json(), MEMORY_LIMIT_ENV: str(memory)})


async def test_interrupt_restart_memory_limit_and_death_behave_as_without_it(tmp_path: Path) -> None:
    session = _sandboxed_session(tmp_path)
    await session.start()
    try:
        running = session.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
        async for event in running:
            if getattr(event, "text", "") == "sleeping\n":
                break
        await session.interrupt()
        events = [event async for event in running]
        assert any(getattr(e, "ename", None) == "KeyboardInterrupt" for e in events)
        assert events[-1] == CellFinished("error", 1)
        outcome = await session.run("import torch\nx = torch.empty(4 << 30, dtype=torch.uint8)")
        assert outcome.finished.status == "error" and "gradrepl: out of memory under --memory-limit 2G" in outcome.stream_text("stderr")
        assert (await session.run("print('alive')")).stream_text("stdout") == "alive\n"
        private = (await session.run("import tempfile\nprint(tempfile.gettempdir())")).stream_text("stdout").strip()
        assert Path(private).is_dir()
        await session.restart()
        outcome = await session.run(f"open({str(tmp_path.parent / f'x-{uuid.uuid4().hex}')!r}, 'w')")
        assert outcome.finished.status == "error" and REFUSED in outcome.stream_text("stderr")  # the new kernel is sandboxed too
        assert not Path(private).exists()  # the first kernel's private temp folder went with it
        outcome = await session.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        assert outcome.finished == CellFinished("died", None, "the kernel was killed by SIGKILL")
    finally:
        await session.shutdown()


def test_config_default_applies_and_no_sandbox_overrides_it(tmp_path: Path) -> None:
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "gradrepl"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(f'sandbox = "{SANDBOX.partition("=")[2] or "strict"}"\n')
    lesson = tmp_path / "lesson"
    lesson.mkdir()
    target = tmp_path / f"outside-{uuid.uuid4().hex}.txt"
    path = script(lesson, f"open({str(target)!r}, 'w').write('x')")
    confined = gradrepl("replay", "--json", str(path))
    assert records(confined.stdout)[0]["stderr"].startswith(REFUSED) and not target.exists()
    free = gradrepl("replay", "--json", "--no-sandbox", str(path))
    assert records(free.stdout)[0]["status"] == "ok" and target.exists()
    (config / "config.toml").write_text('sandbox = "yes"\n')
    bad = gradrepl("replay", str(path))
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == f"gradrepl: {config / 'config.toml'}: sandbox should be \"strict\", \"best-effort\" or false, not 'yes'\n"


def test_bad_limits_are_one_line_and_exit_2(tmp_path: Path) -> None:
    path = script(tmp_path, "1")
    for args, said in [
        (("--sandbox", "--sandbox-limit", "cpus=3"), "not NAME=VALUE with NAME one of cpu, processes, open-files, file-size: 'cpus=3'"),
        (("--sandbox", "--sandbox-limit", "processes=2.5"), "processes: not a whole number above 0: '2.5'"),
        (("--sandbox", "--sandbox-limit", "file-size=lots"), "file-size: not a size such as 512M, 4G or 1000000 (bytes): 'lots'"),
        (("--sandbox-limit", "cpu=3"), None),
        (("--sandbox", "--no-sandbox"), None),
    ]:
        run = gradrepl("replay", *args, str(path))
        assert run.returncode == 2 and run.stdout == "", args
        if said is None:
            assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("gradrepl: "), run.stderr
        else:
            assert said in run.stderr.splitlines()[-1], run.stderr



async def test_a_process_left_running_ends_with_the_kernel_while_the_front_end_goes_on(tmp_path: Path) -> None:
    # ipykernel ends its children when asked to shut down, sandboxed or not: check and the app
    # go on to the next lesson or kernel, and a background loop must not go on with them.
    session = _sandboxed_session(tmp_path)
    await session.start()
    try:
        outcome = await session.run("import subprocess\nchild = subprocess.Popen(['sleep', '300'])\nprint(child.pid)")
        pid = int(outcome.stream_text("stdout"))
        await session.restart()
        for _ in range(100):
            if not _alive(pid):
                break
            await asyncio.sleep(0.1)
        else:
            os.kill(pid, 9)
            raise AssertionError("the background process outlived its kernel")
        assert (await session.run("print('new kernel')")).stream_text("stdout") == "new kernel\n"
    finally:
        await session.shutdown()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie not yet reaped by init has ended
