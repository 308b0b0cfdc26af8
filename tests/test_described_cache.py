"""The report keeps a tensor's description while nothing about it changed (described_cache.py):
after every kind of change, the snapshot a long-lived probe makes must equal one made from
scratch. Writes that torch's version counter does not see (`.data`, a numpy view) included."""

from __future__ import annotations

import gc
import types
import weakref
from collections.abc import Callable
from typing import Any

import pytest
import torch

from gradrepl.inkernel.snapshot import snapshot
from gradrepl.inkernel.values import ValuesMemo


def without_serials(snap: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in info.items() if k != "object"} for info in snap["tensors"]]


def namespace() -> dict[str, Any]:
    w = torch.randn(3, 4, requires_grad=True)
    z = torch.tensor([1 + 2j, -3j], dtype=torch.complex64)
    ns: dict[str, Any] = {
        "w": w, "b": torch.zeros(4, requires_grad=True), "d": torch.arange(6, dtype=torch.float64).reshape(2, 3),
        "i": torch.tensor([1, 2**40, -5]), "flags": torch.tensor([True, False]), "h": torch.ones(3, dtype=torch.float16),
        "z": z, "zc": z.conj(), "wt": w.t(), "nan": torch.tensor([float("nan"), 0.0]), "scalar": torch.tensor(2.5),
        "model": torch.nn.Linear(2, 2), "pair": [w, torch.ones(2)],
    }
    return ns


def backward(ns: dict[str, Any]) -> None:
    (ns["w"] * ns["b"]).sum().backward()


def call(method: Callable[..., Any], *args: Any) -> None:
    method(*args)


def retained(ns: dict[str, Any]) -> None:
    ns["y"] = ns["w"] * 2
    ns["y"].retain_grad()


def set_data(ns: dict[str, Any], name: str, value: Any) -> None:
    ns[name].data[0] = value


CHANGES: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("nothing", lambda ns: None),
    (".data write", lambda ns: set_data(ns, "w", 5.0)),
    ("numpy view write", lambda ns: ns["d"].numpy().__setitem__((1, 1), 40.0)),
    ("-0.0 over 0.0 through .data", lambda ns: set_data(ns, "b", -0.0)),
    ("in place under no_grad", lambda ns: torch.no_grad()(lambda: ns["b"].add_(1.0))()),
    ("a first backward: grads appear", backward),
    ("a second backward: grads accumulate", backward),
    ("grad written through .data", lambda ns: ns["w"].grad.data.__setitem__((0, 0), 9.0)),
    ("grad set to None", lambda ns: setattr(ns["b"], "grad", None)),
    ("requires_grad on", lambda ns: call(ns["d"].requires_grad_, True)),
    ("requires_grad off", lambda ns: call(ns["d"].requires_grad_, False)),
    ("storage swapped by .data =", lambda ns: setattr(ns["i"], "data", torch.tensor([7, 8, 9]))),
    ("bool flipped through .data", lambda ns: set_data(ns, "flags", False)),
    ("float16 through .data", lambda ns: set_data(ns, "h", 2.0)),
    ("complex through .data (its conj view too)", lambda ns: set_data(ns, "z", 5 + 5j)),
    ("nan written over nan", lambda ns: set_data(ns, "nan", float("nan"))),
    ("a module's weight through .data", lambda ns: ns["model"].weight.data.fill_(0.25)),
    ("a name rebound", lambda ns: ns.__setitem__("b", torch.full((4,), 3.0))),
    ("an alias added", lambda ns: ns.__setitem__("w_again", ns["w"])),
    ("an alias removed", lambda ns: ns.pop("w_again")),
    ("a non-leaf with retain_grad", retained),
    ("its grad after a backward", lambda ns: ns["y"].sum().backward()),
    ("a name deleted", lambda ns: ns.pop("scalar")),
    ("class changed", lambda ns: setattr(ns["h"], "__class__", torch.nn.Parameter)),
]


@pytest.mark.parametrize("steps", [len(CHANGES)])
def test_each_report_of_a_long_lived_probe_equals_one_made_from_scratch(steps: int) -> None:
    ns = namespace()
    shell = types.SimpleNamespace(user_ns=ns, user_ns_hidden={})
    memo = ValuesMemo()
    for label, change in CHANGES[:steps]:
        change(ns)
        kept = snapshot(shell, memo)
        fresh = snapshot(shell, ValuesMemo())
        assert without_serials(kept) == without_serials(fresh), label
        assert kept["notes"] == fresh["notes"], label


def names_described(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the tensors snapshots describe afresh from now on (not from the cache)."""
    import gradrepl.inkernel.snapshot as snapshot_module

    described: list[str] = []
    real = snapshot_module.describe_tensor

    def counted(torch_: Any, name: str, t: Any, memo_: Any = None) -> dict[str, Any]:
        described.append(name)
        return real(torch_, name, t, memo_)

    monkeypatch.setattr(snapshot_module, "describe_tensor", counted)
    return described


def test_what_did_not_change_is_not_described_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache is used at all: a second report describes only the tensor that changed."""
    ns = {f"t{k}": torch.randn(4, 4) for k in range(50)}
    shell = types.SimpleNamespace(user_ns=ns, user_ns_hidden={})
    memo = ValuesMemo()
    snapshot(shell, memo)
    described = names_described(monkeypatch)
    ns["t7"].data[2, 2] = 100.0
    snapshot(shell, memo)
    assert described == ["t7"]
    snapshot(shell, memo)
    assert described == ["t7"]


def test_a_report_in_which_nothing_changed_sends_the_very_descriptions_of_the_last() -> None:
    """Unchanged tensors cost no copy and no comparison in the probe's delta: the same dicts come
    back, and they still equal what a fresh snapshot says."""
    ns = namespace()
    shell = types.SimpleNamespace(user_ns=ns, user_ns_hidden={})
    memo = ValuesMemo()
    snapshot(shell, memo)
    first = snapshot(shell, memo)["tensors"]
    second = snapshot(shell, memo)["tensors"]
    assert [id(info) for info in second] == [id(info) for info in first]
    set_data(ns, "w", 7.0)  # one tensor (and its view wt) changed: the others are still the same dicts
    third = snapshot(shell, memo)["tensors"]
    assert {info["name"] for info, before in zip(third, second, strict=True) if info is not before} == {"w", "wt"}
    assert without_serials({"tensors": third}) == without_serials(snapshot(shell, ValuesMemo()))


def test_a_tensor_made_where_a_freed_one_was_is_a_new_object() -> None:
    """CPython gives a new tensor the address of one just freed: bound to the same name with the
    same values, it is still another object (its serial differs), not the cached one."""
    ns: dict[str, Any] = {"x": torch.zeros(3)}
    shell = types.SimpleNamespace(user_ns=ns, user_ns_hidden={})
    memo = ValuesMemo()
    (before,) = snapshot(shell, memo)["tensors"]
    address = id(ns.pop("x"))
    gc.collect()
    made = [torch.zeros(3) for _ in range(20_000)]  # one of them where x was (held, so no two share it)
    ns["x"] = next(t for t in made if id(t) == address)
    (after,) = snapshot(shell, memo)["tensors"]
    assert after["object"] != before["object"]


def test_a_new_point_of_grad_history_is_sent_and_an_unchanged_history_is_not() -> None:
    from gradrepl.inkernel.grad_health import HealthBook

    w = torch.ones(3, requires_grad=True)
    shell = types.SimpleNamespace(user_ns={"w": w}, user_ns_hidden={})
    memo = ValuesMemo()
    health = HealthBook(memo.serial)
    (plain,) = snapshot(shell, memo, health=health)["tensors"]
    assert "grad_history" not in plain
    w.grad = torch.full((3,), 2.0)
    health.add(torch, [(w, 2.0)])
    (first,) = snapshot(shell, memo, health=health)["tensors"]
    assert first["grad_history"]["calls"] == [1]
    (again,) = snapshot(shell, memo, health=health)["tensors"]
    assert again is first
    health.add(torch, [(w, 2.0)])  # a call that wrote the same grad: only the history changed
    (second,) = snapshot(shell, memo, health=health)["tensors"]
    assert second["grad_history"]["calls"] == [1, 2]
    assert {k: v for k, v in second.items() if k != "grad_history"} == {k: v for k, v in first.items() if k != "grad_history"}


def test_a_report_cut_short_leaves_the_next_comparing_with_the_last_one_that_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt landing in the report: the next report must not take the values the cut one
    read for ones that were sent."""
    import gradrepl.inkernel.snapshot as snapshot_module

    ns = {"a": torch.zeros(2), "b": torch.zeros(2)}
    shell = types.SimpleNamespace(user_ns=ns, user_ns_hidden={})
    memo = ValuesMemo()
    snapshot(shell, memo)
    ns["a"].data[0] = 5.0  # not seen by _version
    real = snapshot_module.describe_tensor

    def interrupted(*args: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(snapshot_module, "describe_tensor", interrupted)
    with pytest.raises(KeyboardInterrupt):
        snapshot(shell, memo)
    monkeypatch.setattr(snapshot_module, "describe_tensor", real)
    by_name = {info["name"]: info for info in snapshot(shell, memo)["tensors"]}
    assert by_name["a"]["data"]["preview"] == [5.0, 0.0]


@pytest.mark.parametrize("size", [10, 1000])  # a non-leaf cached, and one too large to be
def test_the_cache_holds_no_deleted_tensors_graph(size: int) -> None:
    """What the cache keeps between reports names a tensor's grad_fn, it does not hold the node:
    a deleted non-leaf's graph (and what it saved) is freed at once, as without gradrepl."""
    x = torch.randn(size, requires_grad=True)
    saved = torch.randn(size)
    ns: dict[str, Any] = {"x": x, "y": x * saved}  # MulBackward0 saves `saved`
    shell = types.SimpleNamespace(user_ns=ns, user_ns_hidden={})
    memo = ValuesMemo()
    snapshot(shell, memo)
    snapshot(shell, memo)
    alive = weakref.ref(saved)
    del ns["y"], saved
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("make", [
    lambda: torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),  # strided: its shape cannot be read
    lambda: torch.inference_mode()(lambda: torch.randn(1000))(),  # its version cannot be read
], ids=["nested", "inference"])
def test_a_tensor_whose_metadata_cannot_be_read_is_only_itself_described_again(make: Callable[[], Any],
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ns: dict[str, Any] = {f"t{k}": torch.randn(4) for k in range(20)}
    ns["odd"] = make()
    shell = types.SimpleNamespace(user_ns=ns, user_ns_hidden={})
    memo = ValuesMemo()
    snapshot(shell, memo)
    described = names_described(monkeypatch)
    snapshot(shell, memo)
    assert described == ["odd"]
