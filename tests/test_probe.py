"""The probe, run in this process on a stand-in shell: plain data out, bounded cost, never raises."""

from __future__ import annotations

import gc
import json
import math
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from gradrepl.inkernel import namespace, probe, snapshot
from gradrepl.inkernel.values import SAMPLE_SIZE, ValuesMemo, describe_tensor, python_stats


def shell_with(**names: Any) -> SimpleNamespace:
    hidden = {"In": [], "Out": {}, "exit": object()}
    user_ns = dict(hidden)
    user_ns.update({"_": 1, "__": 2, "_i3": "x", "_5": torch.ones(1), "__name__": "__main__"})
    user_ns.update(names)
    return SimpleNamespace(user_ns=user_ns, user_ns_hidden=hidden)


def by_name(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in snap["tensors"]}


def test_seed_variable_after_three_backwards_shows_accumulated_grad() -> None:
    varibale = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    v_out = torch.mean(varibale**2)
    for _ in range(3):
        v_out.backward(retain_graph=True)
    tensors = by_name(snapshot.snapshot(shell_with(varibale=varibale, v_out=v_out)))

    assert tensors["varibale"]["grad"]["preview"] == [[1.5, 3.0], [4.5, 6.0]]
    assert tensors["varibale"]["is_leaf"] is True
    assert tensors["varibale"]["grad_fn"] is None
    assert tensors["v_out"]["grad_fn"] == "MeanBackward0"
    assert tensors["v_out"]["grad"] is None
    assert tensors["v_out"]["data"]["preview"] == 7.5
    assert tensors["varibale"]["shape"] == [2, 2]
    assert tensors["varibale"]["dtype"] == "float32"
    assert tensors["varibale"]["device"] == "cpu"


def test_snapshot_is_plain_json_data() -> None:
    x = torch.tensor([1.0, float("nan"), float("inf")])
    snap = snapshot.snapshot(shell_with(x=x, c=torch.tensor([1 + 2j]), b=torch.tensor([True])))
    assert json.loads(json.dumps(snap, allow_nan=False)) == snap
    stats = by_name(snap)["x"]["data"]["stats"]
    assert (stats["nan"], stats["inf"], stats["min"], stats["max"]) == (1, 1, 1.0, 1.0)


def test_names_one_level_deep_in_containers_and_modules() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    fc = torch.nn.Module()
    fc.fc = torch.nn.Linear(1, 1)
    names = by_name(
        snapshot.snapshot(
            shell_with(
                params=[torch.ones(1), "not a tensor", torch.zeros(2)],
                pair=(torch.ones(1),),
                d={"w": torch.ones(1), 3: torch.ones(1), (1, 2): torch.ones(1)},
                nested=[[torch.ones(1)]],
                model=model,
                net=fc,
            )
        )
    ).keys()
    assert {"params[0]", "params[2]", "pair[0]", "d['w']", "d[3]"} <= names
    assert {"model.0.weight", "model.0.bias", "model.1.running_mean", "net.fc.weight"} <= names
    assert not any(name.startswith("nested") for name in names)
    assert not any(name.startswith("d[(") for name in names)


def test_ipython_caches_and_hidden_names_are_not_user_tensors() -> None:
    names = by_name(snapshot.snapshot(shell_with(_w=torch.ones(1)))).keys()
    assert list(names) == ["_w"]


@pytest.mark.parametrize("shape", [(16, 16), (7,), (2, 9, 3), (8, 1, 8), (5, 40), (3, 0, 9)])
def test_a_small_tensors_preview_is_the_corner_a_large_ones_is_cut_to(shape: tuple[int, ...]) -> None:
    from gradrepl.inkernel.values import _preview_of_large

    t = torch.arange(math.prod(shape), dtype=torch.float32).reshape(shape)
    if t.numel():
        t.view(-1)[-1] = float("nan")
    info = describe_tensor(torch, "t", t)
    preview, truncated = _preview_of_large(torch, t)  # index_select per dimension, not the list path
    assert info["data"]["truncated"] is truncated is True
    assert json.dumps(info["data"]["preview"]) == json.dumps(json.loads(json.dumps(preview)))


def test_huge_tensor_costs_a_bounded_slice() -> None:
    big = torch.arange(10**8, dtype=torch.float32).view(10**4, 10**4)
    info = describe_tensor(torch, "big", big)
    preview = info["data"]["preview"]
    assert info["data"]["truncated"] is True
    assert len(preview) == 7 and preview[3] == "…"
    assert preview[0] == [0.0, 1.0, 2.0, "…", 9997.0, 9998.0, 9999.0]
    assert preview[-1][-1] == float(big[-1, -1])
    stats = info["data"]["stats"]
    assert stats["sampled"] is True and stats["sample_size"] <= SAMPLE_SIZE
    assert stats["min"] == 0.0 and stats["max"] > 9.9e7


def test_stats_exact_below_the_limit() -> None:
    t = torch.arange(10_000, dtype=torch.float64)
    stats = describe_tensor(torch, "t", t)["data"]["stats"]
    assert stats["sampled"] is False
    assert stats["norm"] == pytest.approx(float(t.norm()))
    assert (stats["min"], stats["max"]) == (0.0, 9999.0)


def test_non_leaf_grad_is_not_read_and_warns_nothing() -> None:
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = describe_tensor(torch, "y", y)
    assert info["grad"] is None and info["is_leaf"] is False


def test_retained_grad_of_non_leaf_is_shown() -> None:
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    y.retain_grad()
    y.sum().backward()
    info = describe_tensor(torch, "y", y)
    assert info["retains_grad"] is True
    assert info["grad"]["preview"] == [1.0, 1.0]


def test_reading_values_changes_nothing() -> None:
    x = torch.ones(3, requires_grad=True)
    before = x._version
    snapshot.snapshot(shell_with(x=x))
    assert x._version == before and x.grad is None and x.grad_fn is None


class Hostile(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[override]
        raise RuntimeError("no")

    def __repr__(self) -> str:  # type: ignore[override]
        raise RuntimeError("no repr")


def test_odd_tensors_never_raise() -> None:
    shell = shell_with(
        meta=torch.empty(3, device="meta"),
        sparse=torch.eye(3).to_sparse(),
        hostile=torch.ones(2).as_subclass(Hostile),
        empty=torch.empty(0, 3),
        ints=torch.arange(5),
    )
    tensors = by_name(snapshot.snapshot(shell))
    assert set(tensors) == {"meta", "sparse", "hostile", "empty", "ints"}
    assert tensors["sparse"]["note"].startswith("values not shown")
    assert tensors["meta"]["data"] is None
    assert tensors["empty"]["data"]["stats"] is None
    assert tensors["ints"]["data"]["stats"]["max"] == 4.0


def test_without_torch_imported_the_snapshot_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "torch")
    assert snapshot.snapshot(shell_with(x=1)) == {"tensors": [], "notes": []}


def test_tensor_count_is_capped_with_a_note() -> None:
    many = {f"t{i}": torch.ones(1) for i in range(snapshot.MAX_TENSORS + 5)}
    snap = snapshot.snapshot(shell_with(**many))
    assert len(snap["tensors"]) == snapshot.MAX_TENSORS
    assert snap["notes"] == [f"5 more tensors not shown (limit {snapshot.MAX_TENSORS})"]


class FakeComm:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, data: dict[str, Any]) -> None:
        self.sent.append(json.loads(json.dumps(data)))


class CollectorWatchingComm(FakeComm):
    def __init__(self) -> None:
        super().__init__()
        self.collecting: list[bool] = []

    def send(self, data: dict[str, Any]) -> None:
        self.collecting.append(gc.isenabled())
        super().send(data)


@pytest.mark.parametrize("collecting", [True, False])
def test_the_report_is_made_without_the_cyclic_collector_and_leaves_it_as_it_was(collecting: bool) -> None:
    shell = shell_with(a=torch.ones(2))
    p = probe.Probe(shell, kernel=None)
    p.comm = comm = CollectorWatchingComm()
    result = SimpleNamespace(error_before_exec=None, error_in_exec=None, execution_count=1)
    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        p.post_run_cell(result)
        after = gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
    assert comm.collecting == [False] and comm.sent[-1]["tensors_changed"]
    assert after is collecting


def test_reports_carry_only_changed_tensors_and_the_front_end_rebuilds_the_table() -> None:
    from gradrepl.client.events import ProbeState

    shell = shell_with(a=torch.ones(2), b=torch.zeros(3))
    p = probe.Probe(shell, kernel=None)
    p.comm = FakeComm()
    state = ProbeState()
    result = SimpleNamespace(error_before_exec=None, error_in_exec=None, execution_count=1)

    def cell() -> tuple[dict[str, Any], list[str]]:
        p.post_run_cell(result)
        sent = p.comm.sent[-1]
        names = [t.name for t in state.report_from(sent).tensors]
        return sent, names

    first, names = cell()
    assert [t["name"] for t in first["tensors_changed"]] == ["a", "b"] and names == ["a", "b"]

    unchanged, names = cell()
    assert unchanged["tensors_changed"] == [] and names == ["a", "b"]

    shell.user_ns["a"].data *= 100  # .data writes do not bump _version: values are compared
    del shell.user_ns["b"]
    shell.user_ns["c"] = torch.ones(1)
    changed, names = cell()
    assert [t["name"] for t in changed["tensors_changed"]] == ["c"]
    assert [(t["name"], sorted(t)) for t in changed["tensors_patched"]] == [("a", ["data", "name"])]
    assert names == ["a", "c"]
    assert state.tensors["a"].data.preview == (100.0, 100.0)


def test_patched_tables_equal_the_full_descriptions_through_a_training_session() -> None:
    """The front end's table, kept by patches, is what the kernel's full descriptions say after
    every cell: values and grads written, a grad cleared, a name bound to another tensor,
    an alias added and dropped, a history begun."""
    from gradrepl.client.events import ProbeState
    from gradrepl.protocol import TensorInfo

    model = torch.nn.Linear(3, 2)
    shell = shell_with(model=model, x=torch.ones(4, 3))
    p = probe.Probe(shell, kernel=None)
    p.comm = FakeComm()
    state = ProbeState()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ns = shell.user_ns

    def step_grads() -> None:
        model(ns["x"]).sum().backward()

    def alias() -> None:
        ns["w"] = model.weight

    def rebind() -> None:
        ns["x"] = torch.zeros(4, 3)

    def clear() -> None:
        opt.zero_grad(set_to_none=True)

    def drop_alias() -> None:
        del ns["w"]

    for n, change in enumerate([lambda: None, step_grads, opt.step, alias, step_grads, rebind, clear, drop_alias, step_grads, opt.step], 1):
        change()
        p.post_run_cell(SimpleNamespace(error_before_exec=None, error_in_exec=None, execution_count=n))
        state.report_from(p.comm.sent[-1])
        full = [TensorInfo.from_json(t) for t in p.sent.values()]
        assert list(state.tensors.values()) == full, f"after cell {n}"
    steps = [m for m in p.comm.sent if m.get("tensors_patched")]
    assert steps, "no cell was sent as patches"
    assert all("grad" not in patch for patch in p.comm.sent[-1]["tensors_patched"])  # opt.step: new values, same grads


def test_the_memo_reuses_unchanged_values_and_sees_writes_through_data() -> None:
    x = torch.ones(2, 2, requires_grad=True)
    others = {f"t{i}": torch.full((3,), float(i)) for i in range(50)}
    memo = ValuesMemo()
    shell = shell_with(x=x, **others)
    first = by_name(snapshot.snapshot(shell, memo))
    second = by_name(snapshot.snapshot(shell, memo))
    assert all(second[name]["data"] is first[name]["data"] for name in first)
    x.data *= 100  # does not bump x._version: only the values tell
    assert by_name(snapshot.snapshot(shell, memo))["x"]["data"]["preview"] == [[100.0, 100.0], [100.0, 100.0]]


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(2, 3)
        self.again = self.a  # the same submodule twice
        self.norm = torch.nn.BatchNorm1d(3)
        self.inner = torch.nn.Sequential(torch.nn.Linear(3, 3), self.norm)
        self.shared = self.a.weight  # the same parameter under a second name
        self.register_buffer("absent", None)
        self.register_parameter("unset", None)
        self.register_buffer("scratch", torch.ones(1), persistent=False)


@pytest.mark.parametrize("make", [Block, lambda: torch.nn.TransformerEncoderLayer(8, 2), lambda: torch.nn.LSTM(2, 3, 2)])
def test_a_modules_tensors_are_named_as_named_parameters_then_named_buffers_name_them(make) -> None:
    module = make()
    expected = [(f"m.{k}", id(v)) for k, v in module.named_parameters()] + [(f"m.{k}", id(v)) for k, v in module.named_buffers()]
    assert [(name, id(t)) for name, t in namespace.named_tensors(torch, shell_with(m=module))] == expected


@pytest.mark.parametrize(
    "values",
    [[0.5, -2.0, 3.25], [1e308, 1e308], [float("nan"), 1.0], [float("inf"), -1.0], [2, -7, 4], [-0.0], [1e-300, -1e-300]],
)
def test_python_stats_agree_with_torch(values: list[Any]) -> None:
    t = torch.tensor(values, dtype=torch.float64)
    finite = t[torch.isfinite(t)]
    stats = python_stats(values, len(values))
    norm = float(t.square().sum().sqrt())
    assert stats["norm"] == ("nan" if norm != norm else "inf" if norm == float("inf") else pytest.approx(norm))
    assert (stats["min"], stats["max"]) == ((float(finite.min()), float(finite.max())) if finite.numel() else (None, None))
    assert (stats["nan"], stats["inf"]) == (int(t.isnan().sum()), int(t.isinf().sum()))
    assert all(type(v) is float for v in (stats["min"], stats["max"]))
