"""Faults while cells run (issue 12): a cell that cannot be interrupted, a second Ctrl+C,
a cell that takes the kernel's sys.stdout away, deep recursion, syntax errors, and a memory
limit the system does not allow."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import pytest

from support.command_line import gradrepl as run_gradrepl
from support.command_line import records, script
from support.waiting import wait_until

gradrepl = partial(run_gradrepl, timeout=120)

pytestmark = [pytest.mark.faults]


# ---------------------------------------------------------------- a cell that cannot be interrupted

IGNORES_SIGINT = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"


@pytest.mark.kernel
def test_keep_going_after_a_cell_that_ignores_sigint_restarts_the_kernel_and_runs_the_rest(tmp_path: Path) -> None:
    path = script(tmp_path, "x = 1", IGNORES_SIGINT, "print('three')", "x")
    done = gradrepl("replay", "--json", "--keep-going", "--cell-timeout", "1", str(path), timeout=60)
    cells = records(done.stdout)
    assert done.returncode == 1, done.stderr
    assert [c["status"] for c in cells] == ["ok", "timeout", "ok", "error"]
    assert "the kernel was restarted" in cells[1]["reason"]
    assert cells[2]["stdout"] == "three\n" and cells[2]["execution_count"] == 1  # a fresh kernel counts from 1
    assert any("fresh kernel" in note for note in cells[2]["notes"])
    assert cells[3]["error"]["ename"] == "NameError"  # the lost kernel had x: honest, and said
    text = gradrepl("replay", "--keep-going", "--cell-timeout", "1", str(path), timeout=60).stdout
    assert "the kernel was restarted" in text and "three\n" in text


@pytest.mark.kernel
def test_without_keep_going_an_uninterruptible_cell_ends_the_run_without_a_restart(tmp_path: Path) -> None:
    path = script(tmp_path, "x = 1", IGNORES_SIGINT, "print('never')")
    done = gradrepl("replay", "--json", "--cell-timeout", "1", str(path), timeout=60)
    cells = records(done.stdout)
    assert done.returncode == 1
    assert [c["status"] for c in cells] == ["ok", "timeout"]
    assert "restarted" not in cells[1]["reason"]


# ---------------------------------------------------------------- a second Ctrl+C


def _replay_in_a_loop(tmp_path: Path, loop: str) -> tuple[subprocess.Popen[str], Path]:
    looping = tmp_path / "looping"
    started = f"__import__('pathlib').Path({str(looping)!r}).touch()\nwhile True:"
    path = script(tmp_path, "x = 1", loop.replace("while True:", started, 1), "print('never')")
    replay = subprocess.Popen(
        [sys.executable, "-m", "gradrepl", "replay", "--json", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"},
    )
    return replay, looping


@pytest.mark.kernel
@pytest.mark.parametrize("gap", [0.0, 0.05, 0.5])
def test_a_second_ctrl_c_soon_after_the_first_exits_130_without_a_traceback(tmp_path: Path, gap: float) -> None:
    replay, looping = _replay_in_a_loop(tmp_path, "while True:\n    pass")
    try:
        wait_until(looping.exists, "cell 2 starting its loop", timeout=60)
        replay.send_signal(signal.SIGINT)
        if gap:
            time.sleep(gap)
        replay.send_signal(signal.SIGINT)
        _, err = replay.communicate(timeout=20)
    finally:
        replay.kill()
    assert replay.returncode == 130, err
    assert "Traceback" not in err and "CancelledError" not in err
    assert err.splitlines()[-1].startswith("gradrepl: interrupted")


@pytest.mark.kernel
def test_a_second_ctrl_c_stops_at_once_when_the_cell_ignores_the_first(tmp_path: Path) -> None:
    replay, looping = _replay_in_a_loop(tmp_path, IGNORES_SIGINT)
    try:
        wait_until(looping.exists, "cell 2 starting its loop", timeout=60)
        replay.send_signal(signal.SIGINT)  # the cell ignores it: the replay waits on
        with pytest.raises(subprocess.TimeoutExpired):
            replay.wait(timeout=1)
        replay.send_signal(signal.SIGINT)
        _, err = replay.communicate(timeout=20)
    finally:
        replay.kill()
    assert replay.returncode == 130, err
    assert "Traceback" not in err
    assert err.splitlines() == ["gradrepl: interrupted again: stopped at once, the running cell not reported"]


# ---------------------------------------------------------------- the kernel's sys.stdout taken away


@pytest.mark.kernel
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_cell_setting_sys_stdout_to_none_gets_the_kernels_stream_back_and_says_so(tmp_path: Path, stream: str) -> None:
    # In Jupyter every later cell fails before it starts (IPython's run_cell needs the
    # stream's write()), with no reply: the cell that did it says so instead, and the next works.
    path = script(
        tmp_path,
        f"import sys\nsys.{stream} = None",
        f"print('back', file=sys.{stream})\nsys.{stream} is None",
        f"sys.{stream} = 42",
        "1 + 1",
    )
    done = gradrepl("replay", "--json", "--keep-going", str(path), timeout=60)
    cells = records(done.stdout)
    assert [c["status"] for c in cells] == ["ok"] * 4, done.stdout
    assert cells[0]["stderr"].startswith(f"gradrepl: sys.{stream} was set to None, with which the kernel can show no output")
    assert cells[1][stream] == "back\n" and cells[1]["result"] == "False"
    assert f"gradrepl: sys.{stream} was set to an object of type int" in cells[2]["stderr"]
    assert cells[3]["result"] == "2" and cells[3]["stderr"] == ""


@pytest.mark.kernel
def test_a_stdout_whose_flush_raises_is_put_back_too(tmp_path: Path) -> None:
    # ipykernel flushes sys.stdout after each cell: a raise there ends the cell without its
    # reply and without `idle`, and a replay without --cell-timeout would wait forever.
    broken = "import sys\nclass Broken:\n    def write(self, text):\n        return len(text)\n" \
             "    def flush(self):\n        raise OSError('the disk is gone')\n\nsys.stdout = Broken()"
    path = script(tmp_path, broken, "1 + 1")
    done = gradrepl("replay", "--json", "--keep-going", str(path), timeout=60)
    cells = records(done.stdout)
    assert [c["status"] for c in cells] == ["ok", "ok"], done.stdout
    assert "gradrepl: sys.stdout was set to an object of type Broken" in cells[0]["stderr"]


@pytest.mark.kernel
def test_a_cell_the_kernel_fails_to_run_says_why(tmp_path: Path) -> None:
    # A stdout IPython cannot wrap (its write is read-only): ipykernel fails before the cell
    # runs, logs why, and sends no reply; the cell says what the log says, and the kernel's
    # stream is put back for the next one.
    slots = "import sys\nclass Slotted:\n    __slots__ = ()\n    def write(self, text):\n        return len(text)\n" \
            "    def flush(self):\n        pass\n\nsys.stdout = Slotted()"
    path = script(tmp_path, slots, "1 + 1", "2 + 2")
    done = gradrepl("replay", "--json", "--keep-going", str(path), timeout=60)
    cells = records(done.stdout)
    assert [c["status"] for c in cells] == ["ok", "error", "ok"], done.stdout
    assert cells[1]["reason"] == "the kernel sent no reply: AttributeError: 'Slotted' object attribute 'write' is read-only"
    assert "gradrepl: sys.stdout was set to an object of type Slotted" in cells[1]["stderr"]
    assert cells[2]["result"] == "4" and cells[2]["reason"] == ""  # the stream is back; nothing stale
    text = gradrepl("replay", str(path), timeout=60).stdout
    assert "[kernel error: the kernel sent no reply: AttributeError: 'Slotted' object attribute 'write' is read-only]" in text


# ---------------------------------------------------------------- short tracebacks


def test_repeated_frames_are_collapsed_as_python_does() -> None:
    from gradrepl.headless.replay import short_traceback
    from gradrepl.protocol import ErrorFrame

    def frame(line: int, name: str, text: str) -> ErrorFrame:
        return ErrorFrame.from_json({"filename": "x.py", "lineno": line, "name": name, "text": text,
                                     "script_file": "/s/rec.py", "script_line": line})

    frames = (frame(8, "<module>", "f(0)"), *[frame(6, "f", "return f(n + 1)")] * 2000, frame(3, "g", "g()"))
    lines = short_traceback(frames, "rec.py")
    assert lines == [
        "Traceback (most recent call last):",
        '  File "rec.py", line 8, in <module>', "    f(0)",
        *['  File "rec.py", line 6, in f', "    return f(n + 1)"] * 3,
        "  [Previous line repeated 1997 more times]",
        '  File "rec.py", line 3, in g', "    g()",
    ]
    four = short_traceback((frame(8, "<module>", "f(0)"), *[frame(6, "f", "return f(n + 1)")] * 4), "rec.py")
    assert four[-1] == "  [Previous line repeated 1 more time]"


@pytest.mark.kernel
def test_a_recursion_error_is_a_short_traceback(tmp_path: Path) -> None:
    path = script(tmp_path, "def f(n):\n    return f(n + 1)\n\nf(0)")
    done = gradrepl("replay", "--json", str(path), timeout=60)
    error = records(done.stdout)[0]["error"]
    assert error["ename"] == "RecursionError"
    assert len(error["traceback"]) < 12, error["traceback"][:12]
    assert error["traceback"][-1].startswith("  [Previous line repeated ")
    assert error["line"] == 3


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("cell", "ename", "message", "line"),
    [
        ("y = 2\nz = (\n  3 +\n  for\n)", "SyntaxError", "invalid syntax", 8),
        ("if True:\nprint(1)", "IndentationError", "expected an indented block after 'if' statement on line 5", 6),
        ("y = 1\nreturn y", "SyntaxError", "'return' outside function", 6),
    ],
)
def test_a_syntax_error_names_the_script_and_its_line(tmp_path: Path, cell: str, ename: str, message: str, line: int) -> None:
    path = script(tmp_path, "x = 1", cell)  # the second cell starts on line 5
    done = gradrepl("replay", "--json", "--keep-going", str(path), timeout=60)
    error = records(done.stdout)[1]["error"]
    assert (error["ename"], error["evalue"], error["line"]) == (ename, f"{message} (cells.py, line {line})", line)
    assert f'  File "cells.py", line {line}, in <module>' in error["traceback"]
    text = gradrepl("replay", "--keep-going", str(path), timeout=60).stdout
    assert f"{ename}: {message} (cells.py, line {line})" in text
    assert ".py, line" not in text.replace("cells.py, line", "")


@pytest.mark.kernel
async def test_a_syntax_error_shows_as_in_jupyter_and_only_a_cell_from_a_file_names_it(tmp_path: Path) -> None:
    from gradrepl.client.events import strip_ansi
    from gradrepl.client.session import KernelSession

    session = KernelSession(cwd=tmp_path)
    await session.start()
    try:
        from_file = (await session.run("y = 2\nfor\n", origin={"file": str(tmp_path / "lesson.py"), "line": 10})).error
        typed = (await session.run("y = 2\nfor\n")).error  # the same code: IPython gives it the same file name
    finally:
        await session.shutdown()
    assert from_file.evalue == "invalid syntax (lesson.py, line 11)"
    assert strip_ansi(from_file.traceback[0]).splitlines()[0].strip() == "Cell In[1], line 2"  # as Jupyter shows it
    assert typed.evalue.startswith("invalid syntax (") and "lesson.py" not in typed.evalue


# ---------------------------------------------------------------- a memory limit above the hard limit

HARD_LIMIT = 8 << 30


def _hard_limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (HARD_LIMIT, HARD_LIMIT))


@pytest.mark.parametrize("command", [("replay",), ("graph",), ()])
def test_a_memory_limit_above_the_hard_limit_says_so(tmp_path: Path, command: tuple[str, ...]) -> None:
    done = gradrepl(*command, "--memory-limit", "16G", str(script(tmp_path, "x = 1")), timeout=20,
                    preexec_fn=_hard_limit, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[-1].endswith(
        "error: argument --memory-limit: 16G is above this system's hard limit of 8G (ulimit -Hv)")
    assert "too small" not in done.stderr


@pytest.mark.kernel
def test_a_kernel_refusing_a_memory_limit_above_the_hard_limit_is_not_called_too_small(tmp_path: Path) -> None:
    # What the front end says when its check is passed by (a kernel started by the session alone).
    code = textwrap.dedent(f"""
        import asyncio
        from gradrepl.client.session import KernelError, KernelSession
        try:
            asyncio.run(KernelSession(env={{"GRADREPL_MEMORY_LIMIT": str({16 << 30})}}).start())
        except KernelError as err:
            print(err)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, preexec_fn=_hard_limit)
    assert done.stdout.strip() == (
        "gradrepl: the kernel exited while starting: --memory-limit 16G is above this system's hard limit of 8G (ulimit -Hv)")
