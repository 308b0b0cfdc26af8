"""Everything that crosses between the kernel process and the front end.

The probe (gradrepl.inkernel) sends plain JSON on a Jupyter comm; the front end
(gradrepl.client, gradrepl.render, gradrepl.ui, gradrepl.headless) reads it back into the
typed, frozen records defined here, and never looks inside the JSON itself. Both sides
import this module, so it imports nothing but the standard library.

Each record has `to_json()` (plain dicts, lists, str, int, float, bool, None) and
`from_json()`; `from_json(to_json(r)) == r`. The records live in one module per subject
(tensors, backward, graph, report); this package exports them all.
"""

from __future__ import annotations

from gradrepl.protocol.backward import BackwardEvent, BackwardKind, JacobianView, LeafChange, LeafJacobian, NodeOrder, RootLabel
from gradrepl.protocol.graph import (
    GRAPH_REQUEST,
    Graph,
    GraphLeaf,
    GraphNode,
    GraphRepeat,
    SavedState,
    SavedTensor,
    error_reply,
    graph_from_reply,
    graph_reply,
    graph_request,
)
from gradrepl.protocol.health import EXPLODING_RATIO, HEALTH_ENV, VANISHING_RATIO, GradHistory, HealthAlert
from gradrepl.protocol.json_forms import Json
from gradrepl.protocol.node_grads import (
    AUTO_NODE_LIMIT,
    NODE_GRADS_ENV,
    NODE_GRADS_MODES,
    GradPreview,
    NodeGrads,
    NodeGradsMode,
    SavedValue,
    node_grads_mode,
)
from gradrepl.protocol.nonfinite import NAN_CHECK_ENV, NAN_CHECK_REQUEST, NonFinite
from gradrepl.protocol.report import CellReport, Explanation, apply_delta
from gradrepl.protocol.sandbox import SANDBOX_ENV, SANDBOX_PARTLY, SandboxRequest, default_memory_limit, sandbox_request
from gradrepl.protocol.tensors import ErrorFrame, Stats, TensorInfo, TensorPatch, Values

COMM_TARGET = "gradrepl.probe"  # the comm the probe opens; its messages carry CellReport and replies
ORIGIN_KEY = "gradrepl"  # execute_request metadata key: {"file": ..., "line": ...} of the cell

BACKWARD_LOG_ENV = "GRADREPL_BACKWARD_LOG"  # "0" in the kernel's environment: no backward tracing
MEMORY_LIMIT_ENV = "GRADREPL_MEMORY_LIMIT"  # bytes of address space the kernel may use (RLIMIT_AS)
PARENT_PID_ENV = "GRADREPL_PARENT_PID"  # the launching process: the kernel ends when it does
RUNTIME_DIR_PREFIX = "gradrepl-"  # the kernel's private directory: /tmp/gradrepl-XXXXXXXX


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def size_from_text(text: str) -> int:
    """Bytes from 512M, 4G, 2.5g, 1000000 (binary units: 1K is 1024 bytes); ValueError if not a size."""
    number, unit = text.strip(), ""
    if number[-1:].lower() in _SIZE_UNITS:
        number, unit = number[:-1], number[-1:].lower()
    try:
        value = int(float(number) * _SIZE_UNITS[unit]) if number.replace(".", "", 1).isdigit() else 0
    except (ValueError, OverflowError):
        value = 0
    if value <= 0:
        raise ValueError(f"not a size such as 512M, 4G or 1000000 (bytes): {text!r}")
    return value


def size_text(size: int) -> str:
    """Bytes as --memory-limit takes them: 536870912 is 512M, 1610612736 is 1.5G."""
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g}{unit}"
    return str(size)


__all__ = [
    "AUTO_NODE_LIMIT",
    "BACKWARD_LOG_ENV",
    "COMM_TARGET",
    "EXPLODING_RATIO",
    "GRAPH_REQUEST",
    "HEALTH_ENV",
    "MEMORY_LIMIT_ENV",
    "NAN_CHECK_ENV",
    "NAN_CHECK_REQUEST",
    "NODE_GRADS_ENV",
    "NODE_GRADS_MODES",
    "ORIGIN_KEY",
    "PARENT_PID_ENV",
    "RUNTIME_DIR_PREFIX",
    "SANDBOX_ENV",
    "SANDBOX_PARTLY",
    "VANISHING_RATIO",
    "BackwardEvent",
    "BackwardKind",
    "CellReport",
    "ErrorFrame",
    "Explanation",
    "GradHistory",
    "GradPreview",
    "Graph",
    "GraphLeaf",
    "GraphNode",
    "GraphRepeat",
    "HealthAlert",
    "JacobianView",
    "Json",
    "LeafChange",
    "LeafJacobian",
    "NodeGrads",
    "NodeGradsMode",
    "NodeOrder",
    "NonFinite",
    "RootLabel",
    "SandboxRequest",
    "SavedState",
    "SavedTensor",
    "SavedValue",
    "Stats",
    "TensorInfo",
    "TensorPatch",
    "Values",
    "apply_delta",
    "default_memory_limit",
    "error_reply",
    "graph_from_reply",
    "graph_reply",
    "graph_request",
    "node_grads_mode",
    "sandbox_request",
    "size_from_text",
    "size_text",
]
