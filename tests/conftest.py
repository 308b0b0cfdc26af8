from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.terminal import Terminal

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
EXAMPLES = ROOT / "examples"


@pytest.fixture
def examples_copy(tmp_path: Path) -> Path:
    """The examples folder copied, so tests may write beside the scripts."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture(autouse=True)
def private_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """History and journals of the app under test go to a folder of the test's own, and its
    config.toml is read from another (empty) one: never the user's."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("GRADREPL_HISTORY", raising=False)
    monkeypatch.delenv("GRADREPL_JOURNAL_DIR", raising=False)
    return state


# ---------------------------------------------------------------- terminal
# gradrepl on a pseudo-terminal of its own, through the harness the bench uses too
# (benchmarks/terminal.py; the repo root is on sys.path, see pyproject's pythonpath).


@pytest.fixture
def gradrepl_terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    """Starts `python -m gradrepl ARGS` on a 120x40 terminal and waits for its status line;
    each one started is killed, with whatever it launched, when the test ends."""
    started: list[Terminal] = []

    def start(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Terminal:
        argv = [sys.executable, "-m", "gradrepl", *args]
        terminal = Terminal(argv, env=dict(os.environ if env is None else env), cwd=cwd or tmp_path, label="gradrepl")
        started.append(terminal)
        terminal.wait_for("kernel", timeout=60)
        return terminal

    yield start
    for terminal in started:
        terminal.close()


# ---------------------------------------------------------------- kernel guard
# A test not marked `kernel` must not start a kernel, in this process or in any child
# (tests/support/kernel_guard.py). Kernel-free UI tests give the app a recorded session
# (tests/support/recorded_session.py) instead.


@pytest.fixture(autouse=True)
def kernel_guard(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.node.get_closest_marker("kernel") is not None:
        yield
        return
    from support.kernel_guard import KernelGuard

    guard = KernelGuard(tmp_path_factory.mktemp("kernel-guard"))
    guard.install(monkeypatch)
    yield
    violations = guard.violations()
    if violations:
        pytest.fail("a kernel started in a test not marked `kernel`:\n  " + "\n  ".join(violations), pytrace=False)


# ---------------------------------------------------------------- backward tracer (kernel side, in this process)


@pytest.fixture
def traced() -> Iterator[tuple[object, dict[str, object]]]:
    """A BackwardTracer over a namespace the test fills, installed on torch; torch.autograd is
    restored afterwards. Yields (tracer, namespace)."""
    from types import SimpleNamespace

    import torch

    from gradrepl.inkernel import tracer as backward_trace
    from gradrepl.inkernel.glances import capture_glance, render_capture
    from gradrepl.inkernel.namespace import guarded, named_tensors

    namespace: dict[str, object] = {}
    shell = SimpleNamespace(user_ns=namespace, user_ns_hidden={})
    tracer = backward_trace.BackwardTracer(
        lambda t: named_tensors(t, shell), guarded, capture_glance, render_capture
    )
    tracer.install(torch)
    tracer.start_cell(1)
    try:
        yield tracer, namespace
    finally:
        tracer.uninstall()
    assert not hasattr(torch.autograd.backward, "__gradrepl_original__")
