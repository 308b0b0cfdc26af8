"""The probe: runs inside the kernel and turns torch objects into plain data.

This module is its wiring: IPython's cell events, the comm, the report after each cell (sent
as a delta of the tensor table) and the answers to a front end's requests between cells. What
it reports comes from namespace.py (the user's tensors), snapshot.py (their descriptions),
values.py (their previews and stats), errors.py (error frames mapped to the user's file),
tracer.py with glances.py (backward calls) and graph.py (a tensor's graph).

With those modules and jacobian.py, this is the only gradrepl code that touches torch, and it
never imports it: torch is looked up in sys.modules, so a namespace without torch costs nothing
and the kernel behaves exactly as Jupyter's until the user imports torch. What it sends is
protocol records' `to_json()` (tensor descriptions are built as the dicts TensorInfo reads,
for speed).

After every (non-silent) cell the probe sends one `comm_msg` on IOPub, parented to the
cell's execute_request, carrying a CellReport: the snapshot of every named tensor, the
cell's error frames mapped to lines of the user's file, and the backward events.
Nothing it defines lands in the user's namespace. It never raises into the user's cell.
Between cells it answers a front end's requests on the same comm (a tensor's graph).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from gradrepl.inkernel.errors import (
    CellOrigins,
    error_frames,
    hide_frames_from_tracebacks,
    keep_the_kernels_streams,
    name_the_script_in_syntax_errors,
)
from gradrepl.inkernel.glances import capture_glance, render_capture
from gradrepl.inkernel.grad_health import HealthBook
from gradrepl.inkernel.graph import graph_of
from gradrepl.inkernel.namespace import NAMES_SECONDS, REPORT_SECONDS, Budget, guarded, named_tensors
from gradrepl.inkernel.nan_watch import NanWatch
from gradrepl.inkernel.snapshot import snapshot
from gradrepl.inkernel.tracer import BackwardTracer, own_codes
from gradrepl.inkernel.values import ValuesMemo
from gradrepl.protocol import (
    BACKWARD_LOG_ENV,
    COMM_TARGET,
    GRAPH_REQUEST,
    HEALTH_ENV,
    NAN_CHECK_ENV,
    NAN_CHECK_REQUEST,
    NODE_GRADS_ENV,
    ORIGIN_KEY,
    Graph,
    TensorPatch,
    error_reply,
    graph_reply,
    node_grads_mode,
)


class Probe:
    """One kernel's probe, hooked into its shell by `install`."""

    def __init__(self, shell: Any, kernel: Any, settings: Mapping[str, str] | None = None) -> None:
        settings = os.environ if settings is None else settings
        self.shell = shell
        self.kernel = kernel
        self.origins = CellOrigins()
        self.comm: Any = None
        self.memo = ValuesMemo()
        self.tracer = BackwardTracer(
            lambda torch: named_tensors(torch, shell, budget=Budget(NAMES_SECONDS)), guarded, capture_glance, render_capture
        )
        self.nan_watch = NanWatch(self.origins)
        self.health = HealthBook(self.memo.serial)
        self.configure(settings)
        torch = sys.modules.get("torch")
        if torch is not None:
            self.tracer.install(torch)
        else:
            sys.meta_path.insert(0, TorchImportWatcher(self.torch_imported))
        self.sent: dict[str, dict[str, Any]] = {}  # the front end's table, as last sent
        self.describing: dict[str, dict[str, Any]] = {}  # the table the report being sent makes

    def torch_imported(self, torch: Any) -> None:
        self.tracer.install(torch)
        self.nan_watch.torch_imported(torch)

    def pre_run_cell(self, info: Any) -> None:
        try:
            parent = self.kernel.get_parent() if self.kernel is not None else {}
            metadata = (parent or {}).get("metadata") or getattr(info, "cell_meta", None) or {}
            origin = metadata.get(ORIGIN_KEY)
            self.origins.current = origin if isinstance(origin, dict) else None
            self.tracer.start_cell(None)
            self.nan_watch.start_cell(sys.modules.get("torch"))
        except Exception:
            self.origins.current = None

    def post_run_cell(self, result: Any) -> None:
        # What the cell printed goes out before its report (ipykernel's IOPub thread sends a
        # stream on its own schedule: a long report could overtake the cell's last print).
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):  # an interrupt that comes once the cell is done included
                if holds_output(stream):
                    stream.flush()
        # The report's descriptions would start a collection every 700 objects they allocate,
        # each tracing the young objects the cell left: a 2,000-tensor model's report spent
        # most of its time there. What they leave is collected once, after.
        collecting = gc.isenabled()
        try:
            gc.disable()  # inside the try: an interrupt landing as it returns still turns the collector back on
            self.send(self.report(result))
        except BaseException as exc:  # an interrupt that lands in the probe included
            with contextlib.suppress(BaseException):
                self.send({"notes": [f"probe failed: {type(exc).__name__}: {exc}"]})
        finally:
            if collecting:
                gc.enable()

    def configure(self, settings: Mapping[str, str]) -> None:
        """The front end's choices (the *_ENV names of gradrepl.protocol, in the kernel's
        environment when gradrepl started it)."""
        self.tracer.enabled = settings.get(BACKWARD_LOG_ENV, "1") != "0"
        self.tracer.node_grads = node_grads_mode(settings.get(NODE_GRADS_ENV))
        self.tracer.on_grads = self.health.add if settings.get(HEALTH_ENV, "1") != "0" else None
        self.set_nan_check(settings.get(NAN_CHECK_ENV) == "1")

    def set_nan_check(self, on: bool) -> None:
        """--nan-check on or off; on, every call described in full has its nodes' gradients
        checked (recorded as --node-grads says, else only checked)."""
        self.nan_watch.enabled = on
        self.tracer.on_node_grads = self.nan_watch.backward_births if on else None

    def report(self, result: Any) -> dict[str, Any]:
        births = self.nan_watch.end_cell(result.execution_count)
        exc = result.error_before_exec or result.error_in_exec
        snap = snapshot(self.shell, self.memo, health=self.health)
        notes = snap["notes"]
        events = self.tracer.rendered_events(cell=result.execution_count)  # calls past the first counted in them
        report = {
            "execution_count": result.execution_count,
            "notes": notes,
            "backward": [event.to_json() for event in events],
            "frames": error_frames(exc, self.origins) if exc is not None else [],
        }
        if births:
            report["nonfinite"] = [birth.to_json() for birth in births]
        report.update(self.delta(snap["tensors"]))
        return report

    def delta(self, tensors: list[dict[str, Any]]) -> dict[str, Any]:
        """Only what changed since the last report: every name in order, the descriptions of
        tensors new under their name, and patches (the keys that differ) of the same tensor
        objects changed. The front end keeps the table (events.ProbeState)."""
        changed, patched = [], []
        for t in tensors:
            before = self.sent.get(t["name"])
            if before is t or before == t:  # the same dict: the snapshot kept what it sent last time
                continue
            if before is not None and t.get("object") is not None and before.get("object") == t.get("object"):
                patched.append(TensorPatch.between(before, t))
            else:
                changed.append(t)
        self.describing = {t["name"]: t for t in tensors}
        data: dict[str, Any] = {"tensor_names": list(self.describing), "tensors_changed": changed}
        if patched:
            data["tensors_patched"] = patched
        return data

    def send(self, data: dict[str, Any]) -> None:
        if self.comm is None:
            import comm

            self.comm = comm.create_comm(target_name=COMM_TARGET, data={})
            self.comm.on_msg(self.on_request)
        self.comm.send(data)
        if "tensor_names" in data:
            self.sent = self.describing

    def on_request(self, msg: dict[str, Any]) -> None:
        """A front end's question, answered on the same comm: {"request": "graph", "name": ...}."""
        try:
            data = (msg.get("content") or {}).get("data") or {}
            if data.get("request") == GRAPH_REQUEST:
                reply = graph_reply(self.graph(str(data.get("name"))))
            elif data.get("request") == NAN_CHECK_REQUEST:
                self.set_nan_check(bool(data.get("on")))
                reply = {"reply": "nan_check", "on": self.nan_watch.enabled}
            else:
                reply = error_reply(f"unknown request {data.get('request')!r}")
        except BaseException as exc:
            reply = error_reply(f"{type(exc).__name__}: {exc}"[:300])
        with contextlib.suppress(Exception):
            self.comm.send(reply)

    def graph(self, name: str) -> Graph:
        torch = sys.modules.get("torch")
        if torch is None or not hasattr(torch, "Tensor"):
            return Graph.failed(name, "torch is not imported")
        with guarded(torch, quiet=True):
            named = list(named_tensors(torch, self.shell, budget=Budget(REPORT_SECONDS)))
            return graph_of(torch, named, name, self.tracer.node_memory)


def holds_output(stream: Any) -> bool:
    """Whether `stream` may hold output not yet sent. An ipykernel stream's flush from the
    cell's thread waits for its I/O thread to go through everything queued before it: a
    millisecond or two a cell that printed nothing. Any other stream is flushed."""
    buffers = getattr(stream, "_buffers", None)
    if type(buffers) is not defaultdict:
        return True
    return any(buffer.tell() for buffer in list(buffers.values()))


class TorchImportWatcher:
    """Calls `on_import(torch)` once torch has been imported, also when a cell imports it."""

    def __init__(self, on_import: Callable[[Any], None]) -> None:
        self.on_import = on_import

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                self._wrap_loader(spec.loader)
                return spec
        return None

    def _wrap_loader(self, loader: Any) -> None:
        exec_module = loader.exec_module
        watcher = self

        def exec_then_notify(module: Any) -> None:
            exec_module(module)
            try:
                watcher.on_import(module)
            except Exception:
                pass

        loader.exec_module = exec_then_notify


PROBE_ATTRIBUTE = "_gradrepl_probe"  # on the shell: the probe a kernel has, one however many front ends attach


def install(shell: Any, kernel: Any, settings: Mapping[str, str] | None = None) -> Probe:
    probe = Probe(shell, kernel, settings)
    setattr(shell, PROBE_ATTRIBUTE, probe)
    probe.origins.wrap_compiler(shell.compile)
    if hasattr(getattr(shell, "InteractiveTB", None), "structured_traceback"):
        hide_frames_from_tracebacks(shell, own_codes())
    if hasattr(getattr(shell, "SyntaxTB", None), "structured_traceback"):
        name_the_script_in_syntax_errors(shell, probe.origins)
    keep_the_kernels_streams(shell)
    shell.events.register("pre_run_cell", probe.pre_run_cell)
    shell.events.register("post_run_cell", probe.post_run_cell)
    return probe
