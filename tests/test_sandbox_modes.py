"""What `--sandbox` does where Linux cannot confine (strict refuses with one line, best-effort
says what it could not confine), and the request as it crosses to the kernel. No kernel: the
binding's answers are replaced; tests/test_sandbox.py confines real kernels."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import py_landlock
import pytest

from gradrepl.inkernel import sandbox
from gradrepl.protocol import SandboxRequest

REQUEST = SandboxRequest("strict", ("/lessons",))


def no_landlock() -> int:
    raise py_landlock.LandlockNotAvailableError("Landlock is not supported by the kernel")


def test_without_landlock_strict_refuses_and_best_effort_names_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(py_landlock, "get_abi_version", no_landlock)
    with pytest.raises(sandbox.SandboxError) as refused:
        sandbox.confine(REQUEST, "/run/k")
    assert str(refused.value).startswith("gradrepl: --sandbox needs Landlock, which this Linux does not offer (")
    assert str(refused.value).endswith("--sandbox=best-effort runs unconfined, saying so")
    assert sandbox.confine(SandboxRequest("best-effort", ()), "/run/k") == ["everything (this Linux has no Landlock)"]


def test_below_abi_4_strict_refuses_and_best_effort_names_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[bool] = []
    monkeypatch.setattr(py_landlock, "get_abi_version", lambda: 3)
    monkeypatch.setattr(py_landlock.Landlock, "apply", lambda self: applied.append(True))
    with pytest.raises(sandbox.SandboxError, match=r"^gradrepl: --sandbox cannot confine TCP connect and bind \(Landlock ABI 3; "
                       r"ABI 4 confines them\); --sandbox=best-effort runs without it$"):
        sandbox.confine(REQUEST, "/run/k")
    assert applied == []  # strict: nothing half-applied
    assert sandbox.confine(SandboxRequest("best-effort", ()), "/tmp") == [
        "TCP connect and bind (Landlock ABI 3; ABI 4 confines them)",
        "signals and abstract unix sockets to processes outside it (Landlock ABI 3; ABI 6 confines them)"]
    assert applied == [True]  # what it can confine, it does


def test_below_abi_6_strict_refuses_naming_signals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(py_landlock, "get_abi_version", lambda: 5)
    monkeypatch.setattr(py_landlock.Landlock, "apply", lambda self: None)
    with pytest.raises(sandbox.SandboxError, match=r"^gradrepl: --sandbox cannot confine signals and abstract unix sockets"):
        sandbox.confine(REQUEST, "/run/k")


def test_the_request_crosses_to_the_kernel_unchanged_and_bad_ones_are_refused() -> None:
    request = SandboxRequest("best-effort", ("/a", "/b"), cpu_seconds=1.5, processes=7, open_files=64, file_size=1 << 20)
    assert SandboxRequest.from_json(request.to_json()) == request
    assert sandbox.parse(request.to_json()) == request
    for text in ('{"mode": "lax", "writable": []}', '{"mode": "strict"}', '{"mode": "strict", "writable": [], "processes": 0}',
                 '{"mode": "strict", "writable": [], "cpu_seconds": true}', "[]"):
        with pytest.raises(sandbox.SandboxError, match=r"^gradrepl: not a sandbox request"):
            sandbox.parse(text)


def test_each_refusal_gets_its_own_line_and_others_none(tmp_path: Path) -> None:
    def line(error: BaseException) -> str | None:
        return sandbox.refusal_line(error, REQUEST)

    writable_here = tmp_path / "x"  # its own permissions allow it: only the sandbox refuses it
    assert line(PermissionError(errno.EACCES, "Permission denied", str(writable_here))) == (
        f"gradrepl: the sandbox refused access to {writable_here}: writes are allowed only under /lessons "
        "(run with --sandbox-writable DIR to allow another folder)")
    assert line(PermissionError(errno.EACCES, "Permission denied", "/lessons/read-only.txt")) is None  # inside: the file's own mode
    assert line(PermissionError(errno.EACCES, "Permission denied", "/no/such/folder/x")) is None  # its own permissions refuse it too
    assert line(PermissionError(errno.EACCES, "Permission denied")) == (
        "gradrepl: the sandbox refused this network connection (--sandbox allows no TCP connect or bind)")
    assert line(PermissionError(errno.EPERM, "Operation not permitted")).startswith("gradrepl: the sandbox refused this: no signals")
    assert line(OSError(errno.EFBIG, "File too large")) == "gradrepl: the sandbox limits a file to 4G (--sandbox-limit file-size=SIZE)"
    assert line(OSError(errno.EMFILE, "Too many open files")) == (
        "gradrepl: the sandbox lets the kernel open 1024 files at once (--sandbox-limit open-files=1024)")
    assert line(RuntimeError("can't start new thread")) == (None if os.getuid() == 0 else  # root has no process limit
        "gradrepl: the sandbox lets the kernel start 256 processes and threads (--sandbox-limit processes=256)")
    assert line(ValueError("not allowed to raise maximum limit")).startswith("gradrepl: the sandbox's limits cannot be raised")
    assert line(BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")) is None  # a socket's, not a fork's
    for other in (ValueError("x"), KeyError("k"), OSError(errno.ENOENT, "No such file or directory", "/x")):
        assert line(other) is None


def test_no_new_privs_is_set_without_landlock_too() -> None:
    import subprocess
    import sys

    code = ("from gradrepl.inkernel import capabilities\ncapabilities.no_new_privs()\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "1\n"
