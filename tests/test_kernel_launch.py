"""The kernel process: waiting for its exit, and modules imported ahead of the first cell."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gradrepl.client.process import KernelProcess
from gradrepl.client.session import KernelSession


def test_wait_with_a_timeout_sees_the_exit_while_another_thread_waits(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(7)"], stdin=subprocess.PIPE)
    process = KernelProcess(child, tmp_path, tmp_path / "kernel.json", {})
    watcher = threading.Thread(target=child.wait, daemon=True)  # as the session's death watch does
    watcher.start()
    try:
        assert process.wait(0.05) is None  # still reading its stdin
        assert child.stdin is not None
        child.stdin.close()
        assert process.wait(60) == 7
        assert process.wait(60) == 7  # already reaped
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    watcher.join(10)


CYCLE_WITH_FINALIZER = """
class Noted:
    def __init__(self, path):
        self.path = path
        self.me = self  # a reference cycle: only the cyclic collector frees it
    def __del__(self):
        with open(self.path, "a") as out:
            out.write("finalized\\n")
"""


@pytest.mark.kernel
async def test_the_users_cells_run_with_the_collector_on_and_their_cycles_are_collected(tmp_path: Path) -> None:
    during, at_exit = tmp_path / "during.txt", tmp_path / "at_exit.txt"
    session = KernelSession()
    await session.start()
    try:
        enabled = await session.run("import gc\ngc.isenabled()")
        assert enabled.result is not None and enabled.result.text == "True"
        await session.run(CYCLE_WITH_FINALIZER)
        await session.run(f"Noted({str(during)!r})\nkept = Noted({str(at_exit)!r})\ngc.collect()")
        assert during.read_text() == "finalized\n"
        await session.run("kept.me = kept\ndel kept")
    finally:
        await session.shutdown()
    assert at_exit.read_text() == "finalized\n"  # at the kernel's exit, as in a plain interpreter


@pytest.mark.kernel
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("made_by_gradrepl", [True, False])
def test_a_kernel_whose_launcher_is_already_gone_ends_and_removes_only_a_gradrepl_dir(
    tmp_path: Path, made_by_gradrepl: bool
) -> None:
    import os
    import signal
    import tempfile

    from gradrepl.client.process import _BOOTSTRAP
    from gradrepl.protocol import PARENT_PID_ENV

    runtime_dir = Path(tempfile.mkdtemp(prefix="gradrepl-" if made_by_gradrepl else "other-", dir=tmp_path))
    (runtime_dir / "kernel.json").write_text("{}")
    root = str(Path(__file__).resolve().parent.parent)
    not_the_parent = str(os.getppid())  # the kernel's parent is this process, not its parent
    done = subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP.format(root=root), "-f", str(runtime_dir / "kernel.json")],
        env={**os.environ, PARENT_PID_ENV: not_the_parent}, capture_output=True, timeout=60,
    )
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert runtime_dir.exists() is not made_by_gradrepl
