"""The README's list of `--json` fields is the protocol's: every record's JSON keys, read from
gradrepl/protocol's own `to_json`, against the block under "JSON output" in README.md.
No kernel: records are built here, with every optional field set and then unset."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gradrepl.headless.replay import CellError, CellRecord
from gradrepl.protocol import (
    BackwardEvent,
    CellReport,
    ErrorFrame,
    Explanation,
    Graph,
    GraphLeaf,
    GraphNode,
    GraphRepeat,
    JacobianView,
    LeafChange,
    LeafJacobian,
    RootLabel,
    SavedTensor,
    Stats,
    TensorInfo,
    Values,
)
from gradrepl.protocol.backward import CallRun, GradReset, HookEffect
from gradrepl.protocol.health import GradHistory, HealthAlert
from gradrepl.protocol.node_grads import GradPreview, NodeGrads, SavedValue
from gradrepl.protocol.nonfinite import NonFinite

README = Path(__file__).resolve().parent.parent / "README.md"

STATS = Stats(1.5, 0.0, 1.0, 0, 0, False, 4)
VALUES = Values(((1.0, 2.0), (3.0, 4.0)), False, STATS)
VALUES_WITH_NOTE = Values(None, False, None, note="RuntimeError: meta tensor")
TENSOR = TensorInfo("x", (2, 2), "float32", "cpu", True, True, None, object=1, data=VALUES, grad=VALUES)
ROOT = RootLabel("v_out", "scalar float32 tensor from MeanBackward0", "MeanBackward0", (), Values(7.5))
LEAF_CHANGE = LeafChange("x", None, VALUES, False)
GRAD_RESET = GradReset("x", "cleared")
HOOK = HookEffect("x", 3.2, 1.0, True)
CALL_RUN = CallRun(1, 26, 950, "loss", (0.5, 0.25), 16, 950, 0)
JACOBIAN_LEAF = LeafJacobian("x", (2,), (2,), ((2.0, 0.0), (0.0, 2.0)), (4.0, 0.4), (4.0, 0.4), True)
JACOBIAN = JacobianView("z", (2.0, 0.2), (JACOBIAN_LEAF,))
JACOBIAN_NOTE = JacobianView("z", note="the root has 100 elements")
EVENT = BackwardEvent("backward", 4, (ROOT,), (VALUES,), True, False, ("x",), ("MeanBackward0",), 1, "exact",
                      (LEAF_CHANGE,), None, None, JACOBIAN, ("a note",))
SAVED = SavedTensor("self", "modified", (2,), "float32", "x", 2, 1)
SAVED_UNREADABLE = SavedTensor("other", "unreadable", detail="RuntimeError: ...")
NODE = GraphNode("PowBackward0", "y", None, (SAVED,), (("exponent", "2"),), (1,), 0)
LEAF_NODE = GraphNode("AccumulateGrad", None, GraphLeaf("x", (2,), "float32"), note="saved tensors not read")
GRAPH = Graph("y", (2,), "float32", True, False, (NODE, LEAF_NODE), 2)
REPEAT = GraphRepeat(1000, 2, 2000, (1, 2), (3, 4))
RUN_NODE = GraphNode("AddBackward0 → MulBackward0", next=(5,), repeat=REPEAT)
LEAF_GRAPH = Graph("x", (2,), "float32", True, True, used_by=("y",))
EXPLANATION = Explanation("title", "why", "fix")
GRAD = GradPreview((2, 2), "float32", VALUES)
HISTORY = GradHistory((1, 2), (0.5, "nan"), (2.0, 2.0), 1)
ALERT = HealthAlert("vanishing", "model.0", ("model.0.weight",), 2, 1e-8, 20)
SAVED_VALUE = SavedValue("other", "w", GRAD)
NONFINITE = NonFinite("backward", "PowBackward0", 1, 5, (GRAD,), (GRAD,), "lesson.py", "b = a ** 2", (SAVED_VALUE,))
NODE_GRADS = NodeGrads("MulBackward0", (GRAD,), (GRAD, None), (1, -1), "y")
LEAF_NODE_GRADS = NodeGrads("AccumulateGrad", (GRAD,), (), (), None, "x", (SAVED_VALUE, SavedValue("self", None, None, "freed")),
                            (("alpha", "1"),))
RECORD = CellRecord(1, 3, "x = 1", "error", 1, "", "", None, CellError("ValueError", "no", ("Traceback",), 3),
                    (TENSOR,), (EVENT,), explanation=EXPLANATION)


def documented() -> dict[str, tuple[set[str], set[str]]]:
    """name -> (fields always there, fields marked `?`), from README's JSON output block."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### JSON output"):]
    block = re.search(r"```text\n(.*?)```", section, re.S)
    assert block is not None, "README has no field list under 'JSON output'"
    fields: dict[str, tuple[set[str], set[str]]] = {}
    for line in block.group(1).splitlines():
        name, _, listed = line.partition(":")
        words = listed.split()
        fields[name.strip()] = ({w for w in words if not w.endswith("?")}, {w[:-1] for w in words if w.endswith("?")})
    return fields


def keys(*variants: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Keys every variant has, and those only some have."""
    every = set.intersection(*(set(v) for v in variants))
    some = set.union(*(set(v) for v in variants)) - every
    return every, some


ACTUAL: dict[str, tuple[set[str], set[str]]] = {
    "cell": keys(RECORD.to_json()),
    "error": keys(RECORD.to_json()["error"]),
    "tensor": keys(TENSOR.to_json(), replace(TENSOR, aliases=("c",), module_path=("m",), module_types=("Linear",),
                                             grad_history=HISTORY).to_json()),
    "grad history": keys(HISTORY.to_json()),
    "alert": keys(ALERT.to_json()),
    "values": keys(VALUES.to_json(), VALUES_WITH_NOTE.to_json()),
    "stats": keys(STATS.to_json()),
    "backward": keys(EVENT.to_json(), replace(EVENT, walk_cut=True, brief=True, resets=(GRAD_RESET,), hooks=(HOOK,),
                                              skipped_before=(CALL_RUN,), node_grads_note="off").to_json()),
    "node grads": keys(NODE_GRADS.to_json(), LEAF_NODE_GRADS.to_json()),
    "grad": keys(GRAD.to_json(), GradPreview((), "float32", VALUES_WITH_NOTE).to_json()),
    "saved value": keys(SAVED_VALUE.to_json(), SavedValue("self", None, None, "freed").to_json()),
    "root": keys(ROOT.to_json()),
    "leaf change": keys(LEAF_CHANGE.to_json(), replace(LEAF_CHANGE, retained=True).to_json()),
    "grad reset": keys(GRAD_RESET.to_json()),
    "hook": keys(HOOK.to_json()),
    "call run": keys(CALL_RUN.to_json()),
    "jacobian": keys(JACOBIAN.to_json(), JACOBIAN_NOTE.to_json()),
    "jacobian leaf": keys(JACOBIAN_LEAF.to_json()),
    "explanation": keys(EXPLANATION.to_json()),
    "nonfinite": keys(NONFINITE.to_json(), NonFinite("backward", "SqrtBackward0", None, None, (), ()).to_json()),
    "graph": keys({"cell": 4, **GRAPH.to_json()}, {"cell": 4, **LEAF_GRAPH.to_json()},
                  {"cell": 4, **Graph.failed("y", "no tensor named y").to_json()}),
    "node": keys(NODE.to_json(), LEAF_NODE.to_json(), RUN_NODE.to_json(),
                 replace(NODE, grad_outputs=(GRAD,), grad_inputs=(None,)).to_json()),
    "repeat": keys(REPEAT.to_json()),
    "graph leaf": keys(GraphLeaf("x", (2,), "float32").to_json()),
    "saved": keys(SAVED.to_json(), SAVED_UNREADABLE.to_json(), SavedTensor("x", "freed").to_json()),
}


def test_every_record_is_documented() -> None:
    assert set(documented()) == set(ACTUAL)


@pytest.mark.parametrize("name", sorted(ACTUAL))
def test_the_readme_lists_each_records_fields(name: str) -> None:
    always, optional = ACTUAL[name]
    doc_always, doc_optional = documented()[name]
    # A failed graph has only root and error: its other fields count as "always" in the README
    # (but used_by, which only a leaf's graph has).
    if name == "graph":
        always, optional = always | (optional - {"error", "used_by"}), {"error", "used_by"}
    assert (doc_always, doc_optional) == (always, optional)


@pytest.mark.parametrize("record", [
    STATS, VALUES, VALUES_WITH_NOTE, TENSOR, ROOT, LEAF_CHANGE, JACOBIAN_LEAF, JACOBIAN, JACOBIAN_NOTE, EVENT,
    GRAD_RESET, HOOK, CALL_RUN, replace(EVENT, step=3, group=2, expression="loss", norm="nan", brief=True,
                                        resets=(GRAD_RESET,), hooks=(HOOK,), skipped_before=(CALL_RUN,)),
    SAVED, SAVED_UNREADABLE, NODE, LEAF_NODE, GRAPH, EXPLANATION, REPEAT, RUN_NODE, LEAF_GRAPH,
    GRAD, SAVED_VALUE, NODE_GRADS, LEAF_NODE_GRADS, NONFINITE, HISTORY, ALERT, replace(TENSOR, grad_history=HISTORY), replace(EVENT, node_grads=(NODE_GRADS, LEAF_NODE_GRADS)),
    replace(NODE, grad_outputs=(GRAD,), grad_inputs=(None,)),
    ErrorFrame("<cell>", 3, "<module>", "x.backward()", "lesson.py", 12),
    CellReport(4, ("x",), (TENSOR,), (EVENT,), (ErrorFrame("f", 1, "g", "h"),), ("n",)),
], ids=lambda r: type(r).__name__)
def test_records_come_back_from_their_json(record: Any) -> None:
    assert type(record).from_json(record.to_json()) == record
