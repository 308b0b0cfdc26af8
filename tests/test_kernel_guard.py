"""The guard against kernels in tests not marked `kernel` (tests/support/kernel_guard.py):
it must refuse a kernel started here or in any child, and leave other processes alone.

Each test puts a guard of its own on top of the one conftest.py gives it, so what it
provokes is counted by that inner guard, not held against the test itself."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gradrepl.client.process import _BOOTSTRAP
from support.guard_site.refuse_kernels import REFUSED_EXIT, is_kernel_argv
from support.kernel_guard import KernelGuard, KernelStartForbidden

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def inner_guard(tmp_path: Path) -> Iterator[KernelGuard]:
    notes = tmp_path / "notes"
    notes.mkdir()
    guard = KernelGuard(notes)
    with pytest.MonkeyPatch.context() as patch:
        guard.install(patch)
        yield guard


def test_command_lines_that_start_a_kernel_are_told_apart() -> None:
    bootstrap = [sys.executable, "-c", _BOOTSTRAP.format(root=str(ROOT)), "-f", "kernel.json"]
    assert is_kernel_argv(bootstrap)
    assert is_kernel_argv([sys.executable, "-m", "ipykernel_launcher", "-f", "kernel.json"])
    assert is_kernel_argv(["python3", "-m", "ipykernel", "--help"])
    assert not is_kernel_argv([sys.executable, "-m", "gradrepl", "replay", "bad.py"])
    assert not is_kernel_argv([sys.executable, "-c", "import gradrepl.inkernel.launch"])  # an import is no start


def test_launching_a_kernel_in_the_test_process_is_refused(inner_guard: KernelGuard, tmp_path: Path) -> None:
    from gradrepl.client.process import launch_kernel

    with pytest.raises(KernelStartForbidden):
        launch_kernel(cwd=tmp_path)
    assert len(inner_guard.violations()) == 1 and "gradrepl.inkernel.launch" in inner_guard.violations()[0]


def test_a_kernel_started_by_a_child_process_is_refused_and_noted(inner_guard: KernelGuard) -> None:
    # The child reads the kernel's command from stdin, so its own command line is no kernel's.
    child = "import subprocess, sys; sys.exit(subprocess.run(sys.stdin.read().split('\\0')).returncode)"
    kernel = "\0".join([sys.executable, "-c", _BOOTSTRAP.format(root=str(ROOT)), "-f", "kernel.json"])
    run = subprocess.run([sys.executable, "-c", child], input=kernel, capture_output=True, text=True, timeout=60)
    assert run.returncode == REFUSED_EXIT, run.stderr
    assert "a kernel started in a test not marked `kernel`" in run.stderr
    [violation] = inner_guard.violations()
    assert "gradrepl.inkernel.launch" in violation


def test_other_children_run_untouched(inner_guard: KernelGuard) -> None:
    run = subprocess.run([sys.executable, "-c", "print('fine')"], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout) == (0, "fine\n")
    assert inner_guard.violations() == []
