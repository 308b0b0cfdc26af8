"""What the kernel side sends reads back exactly: real tensors, backward calls, graphs and
vector-Jacobian views from torch, through the protocol records and their JSON."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from gradrepl.inkernel import probe, values
from gradrepl.inkernel.graph import graph_of
from gradrepl.protocol import BackwardEvent, CellReport, Graph, JacobianView, TensorInfo


def plain_json(data: Any) -> Any:
    """The data as the comm carries it (JSON, no NaN literals)."""
    return json.loads(json.dumps(data, allow_nan=False))


def leaf_with_grad() -> torch.Tensor:
    t = torch.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    (t**2).sum().backward()
    return t


def non_leaf_retaining_grad() -> torch.Tensor:
    y = torch.ones(3, requires_grad=True) * 2
    y.retain_grad()
    y.sum().backward()
    return y


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.tensor(2.5),
        lambda: torch.arange(2_000_000, dtype=torch.float32).reshape(1000, 2000),  # sampled stats
        lambda: torch.arange(40.0).reshape(5, 8),  # a cut preview, exact stats
        lambda: torch.tensor([1 + 2j, -3j]),
        lambda: torch.randn(10, 10, dtype=torch.complex64),
        lambda: torch.tensor([True, False]),
        lambda: torch.arange(100) % 3 == 0,
        leaf_with_grad,
        lambda: torch.ones(2, requires_grad=True) * 3,
        non_leaf_retaining_grad,
        lambda: torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0]),
        lambda: torch.full((70,), float("nan")),
        lambda: torch.arange(5),
        lambda: torch.empty(0, 3),
        lambda: torch.empty(3, device="meta"),
        lambda: torch.eye(3).to_sparse(),
    ],
)
def test_a_real_tensor_description_reads_back_exactly(make) -> None:
    description = values.describe_tensor(torch, "t", make(), values.ValuesMemo())
    assert plain_json(description) == description
    assert TensorInfo.from_json(description).to_json() == description


def seed_events(tracer: Any, ns: dict[str, Any]) -> list[BackwardEvent]:
    """The seed notebook's backward calls (examples/seed_autograd.py), and a few more kinds."""
    ns["varibale"] = varibale = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    ns["v_out"] = v_out = torch.mean(varibale**2)
    for _ in range(3):
        v_out.backward(retain_graph=True)
    ns["x"] = x = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    ns["y"] = y = 2 * x
    ns["z"] = z = y.view(2, 2)
    ns["v"] = v = torch.tensor([[2.0, 0.2], [0.01, 0.001]])
    z.backward(v, retain_graph=True)
    ns["x"] = x = torch.ones(1, requires_grad=True)
    ns["y"] = y = 2 * x
    x.data *= 100
    y.backward()
    torch.autograd.grad((x**3).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        (torch.ones(2, requires_grad=True) * 2).backward()
    (torch.ones(300, 300, requires_grad=True) * float("nan")).sum().backward()
    return tracer.rendered_events(cell=7)


def test_real_backward_events_read_back_exactly(traced) -> None:
    tracer, ns = traced
    events = seed_events(tracer, ns)
    assert len(events) == 8
    for event in events:
        data = event.to_json()
        assert plain_json(data) == data
        assert BackwardEvent.from_json(data) == event
        assert data["node_order"] == "exact" and data["cell"] == 7
    assert events[3].jacobian is not None and events[3].roots[0].shape == (2, 2)


def test_real_jacobian_views_read_back_exactly(traced) -> None:
    tracer, ns = traced
    ns["a"] = a = torch.randn(3, requires_grad=True)

    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    (a.sin() * 2).backward(torch.tensor([1.0, 0.5, -1.0]))
    torch.autograd.grad(a.exp(), a, torch.ones(3))
    Double.apply(a).backward(torch.ones(3))  # a note, no J
    views = [event.jacobian for event in tracer.rendered_events()]
    assert [view.note is None for view in views] == [True, True, False]
    for view in views:
        assert JacobianView.from_json(plain_json(view.to_json())) == view


def test_real_graphs_read_back_exactly() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    y = 2 * x
    z = y.view(2, 2)
    a = x * 3
    b = (a.sin() * a).sum()
    a.add_(1)  # b's saved tensors are now modified in place
    c = (x * x).sum()
    c.backward()  # c's saved tensors are freed
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    loss = model(torch.randn(4, 3)).pow(2).mean()
    named = [("x", x), ("y", y), ("z", z), ("a", a), ("b", b), ("c", c), ("loss", loss),
             *((f"model.{k}", p) for k, p in model.named_parameters())]
    for name in ["x", "y", "z", "b", "c", "loss", "nope"]:
        graph = graph_of(torch, named, name)
        data = graph.to_json()
        assert plain_json(data) == data
        assert Graph.from_json(data) == graph


class FakeComm:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, data: dict[str, Any]) -> None:
        self.sent.append(plain_json(data))


def test_the_probes_report_reads_back_exactly() -> None:
    shell = SimpleNamespace(user_ns={}, user_ns_hidden={})
    p = probe.Probe(shell, kernel=None)
    p.comm = FakeComm()
    try:
        p.tracer.install(torch)
        p.pre_run_cell(None)
        shell.user_ns["w"] = w = torch.ones(2, 2, requires_grad=True)
        shell.user_ns["loss"] = loss = (w * 3).sum()
        loss.backward()
        p.post_run_cell(SimpleNamespace(error_before_exec=None, error_in_exec=None, execution_count=4))
        with torch.no_grad():
            w -= 0.1 * w.grad  # the next report patches w: new values, the same grad
        shell.user_ns["v"] = w
        p.post_run_cell(SimpleNamespace(error_before_exec=None, error_in_exec=None, execution_count=5))
    finally:
        p.tracer.uninstall()
    sent, patching = p.comm.sent
    assert [e["node_order"] for e in sent["backward"]] == ["exact"]
    assert sent["backward"][0]["roots"][0]["shape"] == []
    assert CellReport.from_json(sent).to_json() == sent
    assert sorted(patching["tensors_patched"][0]) == ["aliases", "data", "name", "version"]
    assert CellReport.from_json(patching).to_json() == patching
