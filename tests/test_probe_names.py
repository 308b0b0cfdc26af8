"""The probe's table at the scale of real code (issue 13): each tensor object once, under its
first name with its others listed (`c = x`, `g = globals()`); a module's parameters and
buffers carrying their module path and classes, as torch's own named_parameters and
named_modules say; a container cut short said once, not after every cell. In this process
against torch, and one replay through a real kernel (marked `kernel`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from gradrepl.inkernel import namespace, probe, snapshot
from gradrepl.inkernel.values import ValuesMemo
from gradrepl.protocol import TensorInfo
from support.command_line import gradrepl, records, script
from test_probe import Block, shell_with


def described(shell: SimpleNamespace, memo: ValuesMemo | None = None) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in snapshot.snapshot(shell, memo)["tensors"]}


def test_a_tensor_under_two_names_is_described_once_with_its_other_name() -> None:
    x = torch.ones(2, requires_grad=True)
    tensors = described(shell_with(x=x, c=x, y=torch.zeros(1)))
    assert list(tensors) == ["x", "y"]
    assert tensors["x"]["aliases"] == ["c"] and "aliases" not in tensors["y"]


def test_globals_in_the_namespace_lists_each_tensor_once_under_its_plain_name() -> None:
    hidden = {"In": [], "Out": {}, "exit": object()}
    shell = SimpleNamespace(user_ns={**hidden, **{f"t{i}": torch.ones(1) for i in range(300)}}, user_ns_hidden=hidden)
    shell.user_ns["g"] = shell.user_ns  # g = globals()
    every = list(namespace.named_tensors(torch, shell))
    tensors = described(shell)
    assert len(every) > 300 and len(tensors) == 300
    assert list(tensors) == [f"t{i}" for i in range(300)]
    assert sum(len(t.get("aliases", [])) for t in tensors.values()) == len(every) - 300
    assert tensors["t0"]["aliases"] == ["g['t0']"]


def test_a_parameter_also_named_plainly_stays_with_its_module() -> None:
    model = torch.nn.Linear(2, 2)
    tensors = described(shell_with(w=model.weight, model=model))  # w written first
    assert list(tensors) == ["model.weight", "model.bias"]
    assert tensors["model.weight"]["aliases"] == ["w"]


@pytest.mark.parametrize("make", [Block, lambda: torch.nn.TransformerEncoderLayer(8, 2), lambda: torch.nn.LSTM(2, 3, 2)])
def test_module_tensors_carry_the_path_and_classes_torch_names(make) -> None:
    module = make()
    tensors = described(shell_with(m=module))
    parameters, buffers = dict(module.named_parameters()), dict(module.named_buffers())
    assert set(tensors) == {f"m.{name}" for name in [*parameters, *buffers]}
    for name in [*parameters, *buffers]:
        info = TensorInfo.from_json(tensors[f"m.{name}"])
        labels = name.split(".")[:-1]
        owners = [module] + [module.get_submodule(".".join(labels[: i + 1])) for i in range(len(labels))]
        assert info.module_path == ("m", *labels)
        assert info.module_types == tuple(type(owner).__name__ for owner in owners)
        assert info.buffer == (name in buffers)
        assert info.label == name.split(".")[-1]


def test_a_plain_tensor_carries_no_module_fields_and_reads_back_exactly() -> None:
    tensors = described(shell_with(x=torch.ones(1), model=torch.nn.Linear(1, 1)))
    assert "module_path" not in tensors["x"]
    for description in tensors.values():
        assert TensorInfo.from_json(description).to_json() == description


def test_a_cut_container_is_said_once_then_again_when_rebound() -> None:
    memo = ValuesMemo()
    shell = shell_with(big=[torch.ones(1) for _ in range(100)])
    note = "big: the first 64 of its 100 items are listed"
    assert snapshot.snapshot(shell, memo)["notes"] == [note]
    shell.user_ns["big"].append(torch.ones(1))  # the same list, longer: not said again
    assert snapshot.snapshot(shell, memo)["notes"] == []
    assert snapshot.snapshot(shell, memo)["notes"] == []
    shell.user_ns["big"] = [torch.ones(1) for _ in range(200)]  # another list: said
    assert snapshot.snapshot(shell, memo)["notes"] == ["big: the first 64 of its 200 items are listed"]


def test_the_probe_says_the_globals_note_in_the_first_report_only() -> None:
    shell = shell_with(**{f"t{i}": torch.ones(1) for i in range(70)})
    shell.user_ns["g"] = shell.user_ns
    p = probe.Probe(shell, kernel=None)
    notes = []
    for count in range(1, 4):
        shell.user_ns[f"_i{count}"] = "x = 1"  # IPython's input cache grows each cell, and g with it
        notes.append(p.report(SimpleNamespace(error_before_exec=None, error_in_exec=None, execution_count=count))["notes"])
    assert len(notes[0]) == 1 and notes[0][0].startswith("g: the first 64 of its")
    assert notes[1:] == [[], []]


@pytest.mark.kernel
def test_replay_prints_a_cut_containers_note_once(tmp_path) -> None:
    path = script(tmp_path, "import torch\nbig = [torch.ones(1) for _ in range(100)]", "x = 1", "big.append(torch.ones(1))")
    cells = records(gradrepl("replay", "--json", str(path)).stdout)
    assert [c["notes"] for c in cells] == [["big: the first 64 of its 100 items are listed"], [], []]
    text = gradrepl("replay", str(path)).stdout
    assert text.count("the first 64 of its") == 1
