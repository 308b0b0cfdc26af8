"""Faults in what the kernel-side probe and the backward tracer report (issue 12, items 3, 8,
9 and 12): hostile objects the probe must not call into, a report that runs out of time,
backward calls through graphs too big to walk, sparse and nested tensors, and the
autograd calls torch.compile makes while it compiles.

Each item is checked in this process on real torch objects (torch's own hooks are the
oracle for which .grad a call wrote), then once end to end through `gradrepl replay`."""

from __future__ import annotations

import json
import re
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch

from gradrepl.inkernel import namespace, probe, snapshot
from gradrepl.inkernel import tracer as backward_trace
from gradrepl.protocol import BackwardEvent, TensorInfo
from gradrepl.render.tensors import shape_text
from gradrepl.render.text import backward_line
from support.command_line import gradrepl, records, script

pytestmark = [pytest.mark.faults]

README = Path(__file__).resolve().parent.parent / "README.md"


def shell_with(**names: Any) -> SimpleNamespace:
    return SimpleNamespace(user_ns=dict(names), user_ns_hidden={})


def documented_backward_keys() -> tuple[set[str], set[str]]:
    """The backward event's keys the README lists: (always there, marked `?`)."""
    text = README.read_text(encoding="utf-8")
    line = re.search(r"^backward:(.*)$", text[text.index("### JSON output"):], re.M)
    assert line is not None
    words = line.group(1).split()
    return {w for w in words if not w.endswith("?")}, {w[:-1] for w in words if w.endswith("?")}


def assert_every_documented_key(event: dict[str, Any]) -> None:
    always, optional = documented_backward_keys()
    assert always <= set(event), f"missing {always - set(event)}"
    assert set(event) <= always | optional, f"undocumented {set(event) - always - optional}"


def grad_hooks(named: dict[str, torch.Tensor]) -> set[str]:
    """Torch's own record of which leaves' .grad a call wrote: a post-accumulate-grad hook on each."""
    fired: set[str] = set()
    for name, leaf in named.items():
        leaf.register_post_accumulate_grad_hook(lambda _t, name=name: fired.add(name))
    return fired


# ---------------------------------------------------------------- item 3: hostile objects


class Recorder:
    """The hostile methods' calls, while armed (the probe must make none)."""

    calls: ClassVar[list[str]] = []
    armed = False


class SlowModule(torch.nn.Module):
    """Every method a walk of modules might call, overridden to note the call (in the kernel
    each one sleeps)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w

    def __getattribute__(self, name: str) -> Any:
        if Recorder.armed:
            Recorder.calls.append(f"SlowModule.__getattribute__({name})")
        return super().__getattribute__(name)

    def named_modules(self, *args: Any, **kwargs: Any) -> Any:
        Recorder.calls.append("SlowModule.named_modules")
        return super().named_modules(*args, **kwargs)

    def named_children(self) -> Any:
        Recorder.calls.append("SlowModule.named_children")
        return super().named_children()

    def named_parameters(self, *args: Any, **kwargs: Any) -> Any:
        Recorder.calls.append("SlowModule.named_parameters")
        return super().named_parameters(*args, **kwargs)


class SneakyClass:
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        Recorder.calls.append("SneakyClass.__class__")
        return torch.Tensor


class SneakyKey(str):
    def __repr__(self) -> str:
        Recorder.calls.append("SneakyKey.__repr__")
        return "sneaky"

    def __hash__(self) -> int:
        Recorder.calls.append("SneakyKey.__hash__")
        return str.__hash__(self)


@pytest.fixture
def hostile_names() -> Any:
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), SlowModule())
    names = {"m": m, "o": SneakyClass(), "items": [SneakyClass(), torch.ones(1)],
             "d": {SneakyKey("k"): torch.zeros(1), "other": SneakyClass()}, "t": torch.ones(3, requires_grad=True)}
    Recorder.calls = []
    Recorder.armed = True
    yield names
    Recorder.armed = False


def test_the_probe_calls_no_method_a_users_class_overrides(hostile_names: dict[str, Any]) -> None:
    shell = shell_with(**hostile_names)
    listed = [name for name, _ in namespace.named_tensors(torch, shell)]
    snap = snapshot.snapshot(shell)
    Recorder.armed = False
    assert Recorder.calls == []
    expected = ["m.0.weight", "m.0.bias", "m.1.w", "items[1]", "d['k']", "t"]
    assert listed == expected
    assert [t["name"] for t in snap["tensors"]] == expected
    assert snap["notes"] == []


def test_a_backward_call_looks_up_names_without_calling_the_users_methods(traced, hostile_names) -> None:
    tracer, ns = traced
    ns.update(hostile_names)
    Recorder.armed = False
    loss = ns["m"](torch.ones(2)).sum() + ns["t"].sum()
    Recorder.armed = True
    loss.backward()
    Recorder.armed = False
    assert Recorder.calls == []
    (event,) = tracer.rendered_events()
    assert {leaf.name for leaf in event.leaves} == {"m.0.weight", "m.0.bias", "m.1.w", "t"}


class Clock:
    """A clock that moves a second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_a_report_that_runs_out_of_time_reports_what_it_has_with_a_note() -> None:
    shell = shell_with(**{f"t{i}": torch.ones(2) for i in range(10)})
    snap = snapshot.snapshot(shell, budget=namespace.Budget(3.5, clock=Clock()))
    names = [t["name"] for t in snap["tensors"]]
    assert 0 < len(names) < 10 and names == [f"t{i}" for i in range(len(names))]
    (note,) = snap["notes"]
    assert note.startswith("the probe's time budget (3.5 s) ran out:") and "not looked at" in note


def test_a_tensor_found_as_the_budget_runs_out_is_listed_without_its_values() -> None:
    shell = shell_with(a=torch.ones(2), b=torch.ones(2), c=torch.ones(2))
    snap = snapshot.snapshot(shell, budget=namespace.Budget(4.5, clock=Clock()))
    tensors = {t["name"]: t for t in snap["tensors"]}
    # The clock is read as each name is found (1, 2, 3 s), then as each tensor is described (4, 5, 6 s).
    assert list(tensors) == ["a", "b", "c"]
    assert tensors["a"]["data"]["preview"] == [1.0, 1.0]
    for name in ("b", "c"):
        assert tensors[name]["data"] is None and "time budget" in tensors[name]["note"]
        assert TensorInfo.from_json(tensors[name]).shape == (2,)
    assert snap["notes"] == ["the probe's time budget (4.5 s) ran out: 2 tensors listed without their values"]


@pytest.mark.kernel
def test_replay_is_not_held_up_by_methods_that_sleep(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import time, torch
        class Slow(torch.nn.Module):
            def named_modules(self, *args, **kwargs):
                time.sleep(1000)
            def named_children(self):
                time.sleep(1000)
        class Sneaky:
            @property
            def __class__(self):
                time.sleep(1000)
        m = torch.nn.Sequential(torch.nn.Linear(2, 2), Slow())
        o = Sneaky()
        print("cell one output")
        """,
        "m[0](torch.ones(2)).sum().backward()\nprint('cell two output')",
    )
    started = time.monotonic()
    done = gradrepl("replay", "--json", "--cell-timeout", "30", str(path), timeout=120)
    assert time.monotonic() - started < 60  # neither cell waited for its timeout
    cells = records(done.stdout)
    assert [c["status"] for c in cells] == ["ok", "ok"], done.stderr
    assert cells[0]["stdout"] == "cell one output\n" and cells[1]["stdout"] == "cell two output\n"
    assert [t["name"] for t in cells[0]["tensors"]] == ["m.0.weight", "m.0.bias"]
    assert {leaf["name"] for leaf in cells[1]["backward"][0]["leaves"]} == {"m.0.bias", "m.0.weight"}


# ---------------------------------------------------------------- item 8: graphs too big to walk


def chain(start: torch.Tensor, length: int) -> torch.Tensor:
    t = start
    for _ in range(length):
        t = t * 1.0
    return t


def test_a_call_through_more_nodes_than_the_walk_reports_the_grads_it_wrote(traced) -> None:
    tracer, ns = traced
    ns["s"] = torch.ones(3, requires_grad=True)  # at the far end of the graph
    ns["w"] = torch.full((3,), 2.0, requires_grad=True)  # near the root
    ns["u"] = torch.ones(3, requires_grad=True)  # not in the graph, with a grad
    ns["u"].grad = torch.zeros(3)
    fired = grad_hooks({k: ns[k] for k in ("s", "w", "u")})
    (chain(ns["s"], backward_trace.MAX_WALK + 1000) * ns["w"]).sum().backward()
    (event,) = tracer.rendered_events()
    assert fired == {"s", "w"}
    assert {leaf.name for leaf in event.leaves} == fired
    leaves = {leaf.name: leaf for leaf in event.leaves}
    assert leaves["s"].after.preview == tuple(ns["s"].grad.tolist()) == (2.0, 2.0, 2.0)
    assert not leaves["s"].accumulated and leaves["s"].before is None
    assert event.walk_cut and event.nodes_total == backward_trace.MAX_WALK
    line = backward_line(event)
    assert "no .grad changed" not in line and "s.grad fresh [2, 2, 2]" in line
    assert f"more than {backward_trace.MAX_WALK:,} nodes" in line
    assert BackwardEvent.from_json(event.to_json()) == event


def test_an_accumulated_grad_beyond_the_walk_keeps_its_before(traced) -> None:
    tracer, ns = traced
    ns["s"] = torch.ones(2, requires_grad=True)
    ns["s"].grad = torch.full((2,), 5.0)
    fired = grad_hooks({"s": ns["s"]})
    chain(ns["s"], backward_trace.MAX_WALK + 10).sum().backward()
    (event,) = tracer.rendered_events()
    assert fired == {"s"}
    (leaf,) = event.leaves
    assert leaf.accumulated and leaf.before.preview == (5.0, 5.0) and leaf.after.preview == (6.0, 6.0)


def test_a_small_graph_says_its_count_is_exact(traced) -> None:
    tracer, ns = traced
    ns["x"] = torch.ones(2, requires_grad=True)
    (ns["x"] * 2).sum().backward()
    (event,) = tracer.rendered_events()
    assert not event.walk_cut and "walk_cut" not in event.to_json()
    assert_every_documented_key(event.to_json())


@pytest.mark.kernel
def test_replay_reports_the_grad_written_through_100_000_nodes(tmp_path: Path) -> None:
    path = script(tmp_path, """
        import torch
        s = torch.ones(3, requires_grad=True)
        t = s
        for i in range(100_000):
            t = t * 1.0
        t.sum().backward()
        """)
    (cell,) = records(gradrepl("replay", "--json", str(path)).stdout)
    (event,) = cell["backward"]
    assert [(leaf["name"], leaf["after"]["preview"]) for leaf in event["leaves"]] == [("s", [1.0, 1.0, 1.0])]
    assert event["walk_cut"] is True and event["nodes_total"] == 5000
    assert_every_documented_key(event)
    text = gradrepl("replay", str(path)).stdout
    assert "s.grad fresh [1, 1, 1]" in text and "more than 5,000 nodes" in text and "no .grad changed" not in text


# ---------------------------------------------------------------- item 9: sparse and nested tensors


def sparse_leaf() -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 0]]), torch.tensor([1.0, 2.0]), (2, 2),
                                       requires_grad=True)


def nested_leaf(layout: Any) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.nested.nested_tensor([torch.ones(2, 3), torch.ones(4, 3)], layout=layout, requires_grad=True)


def test_a_sparse_grad_is_reported_with_its_shape_layout_and_a_note(traced) -> None:
    tracer, ns = traced
    ns["sp"] = sparse_leaf()
    fired = grad_hooks({"sp": ns["sp"]})
    torch.sparse.sum(ns["sp"] * 2).backward()
    (event,) = tracer.rendered_events()
    assert fired == {"sp"}
    (leaf,) = event.leaves
    assert leaf.name == "sp" and not leaf.accumulated and leaf.after is not None
    assert leaf.after.preview is None and "2x2 sparse_coo" in leaf.after.note
    assert not any(note.startswith("result not described") for note in event.notes)
    assert "no .grad changed" not in backward_line(event)
    assert_every_documented_key(event.to_json())
    torch.sparse.sum(ns["sp"] * 2).backward()  # a second call accumulates into it
    assert tracer.rendered_events()[1].leaves[0].accumulated
    (ns["sp"] * 2).backward(torch.ones(2, 2).to_sparse())  # a sparse root and v: no vᵀ·J, said why
    third = tracer.rendered_events()[2]
    assert third.notes == () and third.jacobian.note == "not computed for a sparse or nested tensor"
    assert third.leaves[0].accumulated


@pytest.mark.parametrize("layout", [torch.strided, torch.jagged], ids=["strided", "jagged"])
def test_a_nested_grad_is_reported_with_a_note(traced, layout: Any) -> None:
    tracer, ns = traced
    ns["nt"] = nested_leaf(layout)
    fired = grad_hooks({"nt": ns["nt"]})
    (ns["nt"] * 2).values().sum().backward()
    (event,) = tracer.rendered_events()
    assert fired == {"nt"}
    (leaf,) = event.leaves
    assert leaf.after.preview is None and "nested" in leaf.after.note
    assert_every_documented_key(event.to_json())


def test_tensors_that_cannot_be_previewed_are_listed_with_shape_layout_and_a_note() -> None:
    sp = sparse_leaf()
    torch.sparse.sum(sp * 2).backward()
    shell = shell_with(sp=sp, nt=nested_leaf(torch.strided), njt=nested_leaf(torch.jagged),
                       csr=torch.eye(3).to_sparse_csr())
    snap = snapshot.snapshot(shell)
    assert snap["notes"] == []
    tensors = {t["name"]: TensorInfo.from_json(json.loads(json.dumps(t))) for t in snap["tensors"]}
    assert list(tensors) == ["sp", "nt", "njt", "csr"]
    assert (tensors["sp"].shape, tensors["sp"].layout) == ((2, 2), "sparse_coo")
    assert (tensors["csr"].shape, tensors["csr"].layout) == ((3, 3), "sparse_csr")
    assert tensors["nt"].shape == tensors["njt"].shape == (2, None, 3)
    assert shape_text(tensors["nt"].shape) == "(2, *, 3)"
    assert all(t.note for t in tensors.values()) and "nested" in tensors["nt"].note and "nested" in tensors["njt"].note


class FakeComm:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, data: dict[str, Any]) -> None:
        self.sent.append(json.loads(json.dumps(data)))


def test_a_note_about_a_tensor_the_probe_cannot_describe_is_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    describe = snapshot.describe_tensor

    def failing(torch: Any, name: str, t: Any, memo: Any = None) -> dict[str, Any]:
        if name == "bad":
            raise RuntimeError("cannot")
        return describe(torch, name, t, memo)

    monkeypatch.setattr(snapshot, "describe_tensor", failing)
    shell = shell_with(bad=torch.ones(1), good=torch.ones(1))
    p = probe.Probe(shell, kernel=None)
    p.comm = FakeComm()
    result = SimpleNamespace(error_before_exec=None, error_in_exec=None, execution_count=1)
    notes = []
    for _ in range(3):
        p.post_run_cell(result)
        notes.append(p.comm.sent[-1]["notes"])
    assert notes == [["bad: not shown (RuntimeError)"], [], []]
    shell.user_ns["bad"] = torch.zeros(1)  # another tensor under the name: said again
    p.post_run_cell(result)
    assert p.comm.sent[-1]["notes"] == ["bad: not shown (RuntimeError)"]


@pytest.mark.kernel
def test_replay_lists_sparse_and_nested_grads_and_says_each_note_once(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import warnings, torch
        warnings.simplefilter("ignore")
        sp = torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 0]]), torch.tensor([1.0, 2.0]), (2, 2), requires_grad=True)
        torch.sparse.sum(sp * 2).backward()
        """,
        """
        nt = torch.nested.nested_tensor([torch.ones(2, 3), torch.ones(4, 3)], requires_grad=True)
        (nt * 2).values().sum().backward()
        """,
        "x = 1",
    )
    cells = records(gradrepl("replay", "--json", str(path)).stdout)
    assert [c["status"] for c in cells] == ["ok", "ok", "ok"]
    for cell in cells[:2]:
        (event,) = cell["backward"]
        assert_every_documented_key(event)
    assert [leaf["name"] for leaf in cells[0]["backward"][0]["leaves"]] == ["sp"]
    assert [leaf["name"] for leaf in cells[1]["backward"][0]["leaves"]] == ["nt"]
    tensors = {t["name"]: t for t in cells[2]["tensors"]}
    assert tensors["sp"]["layout"] == "sparse_coo" and tensors["sp"]["shape"] == [2, 2] and tensors["sp"]["note"]
    assert tensors["nt"]["shape"] == [2, None, 3] and "nested" in tensors["nt"]["note"]
    assert [c["notes"] for c in cells] == [[], [], []]
    text = gradrepl("replay", str(path)).stdout
    assert "no .grad changed" not in text and "sp.grad fresh <" in text and "nt.grad fresh <" in text
    assert "not shown" not in text


# ---------------------------------------------------------------- item 12: torch.compile


@pytest.fixture
def fresh_dynamo() -> Any:
    import torch._dynamo

    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_autograd_calls_torch_makes_while_compiling_are_not_logged(traced, fresh_dynamo) -> None:
    tracer, ns = traced
    ns["x"] = torch.randn(4, requires_grad=True)
    compiled = torch.compile(lambda x: (x.sin() * 2).sum(), backend="aot_eager")
    ns["y"] = compiled(ns["x"])
    assert tracer.rendered_events() == []
    ns["y"].backward()
    (event,) = tracer.rendered_events()
    assert event.kind == "backward" and event.roots[0].name == "y"
    assert [leaf.name for leaf in event.leaves] == ["x"]


@pytest.mark.kernel
def test_replay_logs_no_phantom_call_from_compilation(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import torch
        f = torch.compile(lambda x: (x.sin() * 2).sum(), backend="aot_eager")
        x = torch.randn(4, requires_grad=True)
        y = f(x)
        """,
        "y.backward()",
    )
    cells = records(gradrepl("replay", "--json", str(path)).stdout)
    assert [c["status"] for c in cells] == ["ok", "ok"]
    assert cells[0]["backward"] == []
    assert [(e["kind"], [leaf["name"] for leaf in e["leaves"]]) for e in cells[1]["backward"]] == [("backward", ["x"])]
