"""Tensors on an accelerator (CUDA, MPS): what the probe shows of them is what it shows of the
same tensor on the CPU, from one copy of only the shown corners and six numbers of stats.
This machine has no GPU: the gathering runs on CPU tensors, which take the same path."""

from __future__ import annotations

import math
import types
from typing import Any

import pytest
import torch

from gradrepl.inkernel import device_values
from gradrepl.inkernel.device_values import STATS_FIELDS, DeviceCopies, describe_on_device, gathered
from gradrepl.inkernel.snapshot import snapshot
from gradrepl.inkernel.values import ValuesMemo, describe_values


def _big(dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if dtype == torch.bool:
        return torch.rand(1100, 1000, generator=generator) > 0.5
    if dtype in (torch.int64, torch.int32):
        values = torch.randint(-1000, 1000, (1100, 1000), generator=generator, dtype=dtype)
        if dtype == torch.int64:
            values[0, 0] = 2**62 + 1  # more than float64 holds exactly
        return values
    values = torch.randn(1100, 1000, generator=generator, dtype=dtype)
    if dtype.is_floating_point:
        values[0, 1], values[-1, -1] = math.nan, math.inf
    return values


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.complex64, torch.bool, torch.int64, torch.int32])
@pytest.mark.parametrize("rows", [1100, 40])  # sampled stats (above 2**20 elements) and exact ones
def test_it_describes_a_tensor_as_the_cpu_path_does(dtype: torch.dtype, rows: int) -> None:
    t = _big(dtype)[:rows]
    on_device, on_cpu = describe_on_device(torch, t), describe_values(torch, t)
    assert on_device["preview"] == on_cpu["preview"] and on_device["truncated"] == on_cpu["truncated"]
    if on_cpu["stats"] is None:
        assert on_device["stats"] is None
        return
    for key in ("nan", "inf", "sampled", "sample_size"):
        assert on_device["stats"][key] == on_cpu["stats"][key], key
    for key in ("norm", "min", "max"):
        got, want = on_device["stats"][key], on_cpu["stats"][key]
        assert got == want or got == pytest.approx(want, rel=1e-9), key


def test_only_the_corners_and_the_stats_are_copied_in_one_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    t = torch.randn(3000, 3000)
    packed, _, kept_shape, sampled = gathered(torch, t)
    assert kept_shape == [6, 6] and sampled
    assert packed.dtype == torch.float64 and packed.numel() == 36 + STATS_FIELDS
    copies: list[tuple[int, ...]] = []
    original = torch.Tensor.to

    def counted(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if "cpu" in (*args[:1], kwargs.get("device")):
            copies.append(tuple(self.shape))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", counted)
    describe_on_device(torch, t)
    assert copies == [(36 + STATS_FIELDS,)]


def test_a_report_waits_for_the_device_once_and_fills_every_description_then(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[str] = []
    monkeypatch.setattr(device_values, "synchronize", lambda torch, device: waits.append(str(device)))
    copies = DeviceCopies()
    tensors = [torch.randn(2000, 3000), torch.arange(10.0), torch.randn(70, 70) > 0]
    described = [copies.describe(torch, t) for t in tensors]
    assert described == [{}, {}, {}] and waits == []  # copies started, nothing waited for yet
    copies.finish(torch)
    assert waits == ["cpu"]
    expected = [describe_values(torch, t) for t in tensors]
    assert [d["preview"] for d in described] == [e["preview"] for e in expected]
    assert described[1:] == expected[1:]  # a small tensor copied whole; a bool one without stats
    assert described[0]["stats"]["sampled"] and described[0]["stats"]["nan"] == 0


def test_a_snapshot_finishes_its_device_copies_before_it_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    finished: list[int] = []
    monkeypatch.setattr(ValuesMemo, "finish", lambda self, torch: finished.append(1))
    shell = types.SimpleNamespace(user_ns={"w": torch.ones(3)}, user_ns_hidden={})
    snapshot(shell, ValuesMemo())
    assert finished == [1]
