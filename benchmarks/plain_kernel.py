"""The anchor of the kernel rows: a plain ipykernel (ipykernel_launcher, this interpreter,
no probe) over jupyter_client, and the matching timed run on a gradrepl KernelSession."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, BenchError
from benchmarks.replay import write_kernelspec


class PlainKernel:
    """A plain ipykernel, started with the same transport and history setting as gradrepl's."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.km: Any = None
        self.kc: Any = None

    async def start(self) -> None:
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager

        kernels = write_kernelspec(self.tmp / "jupyter") / "kernels"
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
        # Same transport as gradrepl's kernel (ipc), and the same in-memory history, so the
        # probe is the only difference.
        km = AsyncKernelManager(
            kernel_name="python3", kernel_spec_manager=ksm, transport="ipc", ip=str(self.tmp / "plain"),
            connection_file=str(self.tmp / "plain-kernel.json"),
        )
        argv0 = km.kernel_spec.argv[0] if km.kernel_spec is not None else None
        if argv0 != sys.executable:
            raise BenchError(f"plain kernel would run {argv0}, not {sys.executable}")
        self.km = km
        await km.start_kernel(extra_arguments=["--HistoryManager.hist_file=:memory:"], cwd=str(REPO))
        kc = km.client()
        kc.start_channels()
        self.kc = kc
        try:
            await kc.wait_for_ready(timeout=120)
        except RuntimeError as exc:
            raise BenchError(f"plain ipykernel did not start: {exc}") from None

    async def run(self, code: str, timeout: float = 60.0) -> tuple[float, dict[str, Any]]:
        """Seconds from sending the request to its status idle and execute_reply; the reply."""
        from queue import Empty

        kc = self.kc
        start = time.perf_counter()
        msg_id = kc.execute(code)
        try:
            while True:
                msg = await kc.get_iopub_msg(timeout=timeout)
                if (
                    msg["parent_header"].get("msg_id") == msg_id
                    and msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"
                ):
                    break
            while True:
                reply = await kc.get_shell_msg(timeout=timeout)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
        except Empty:
            raise BenchError(f"plain ipykernel did not answer within {timeout:.0f} s") from None
        elapsed = time.perf_counter() - start
        if reply["content"].get("status") != "ok":
            content = reply["content"]
            raise BenchError(f"plain ipykernel: cell failed: {content.get('ename')}: {content.get('evalue')}")
        return elapsed, reply

    async def shutdown(self) -> None:
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:
                pass
        if self.km is not None:
            try:
                await self.km.shutdown_kernel(now=False)
            except Exception:
                try:
                    await self.km.shutdown_kernel(now=True)
                except Exception:
                    pass
            self.km = None


async def gradrepl_run(session: Any, code: str) -> tuple[float, Any]:
    """Seconds one cell takes on a gradrepl KernelSession, and its outcome; BenchError unless ok."""
    start = time.perf_counter()
    outcome = await session.run(code, timeout=60.0)
    elapsed = time.perf_counter() - start
    if outcome.status != "ok":
        error = outcome.error
        detail = f"{error.ename}: {error.evalue}" if error else (outcome.finished.reason if outcome.finished else "")
        raise BenchError(f"gradrepl kernel: cell {code.splitlines()[0]!r} ended {outcome.status}: {detail}")
    return elapsed, outcome
