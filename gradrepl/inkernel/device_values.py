"""Previews and stats of a tensor on an accelerator (CUDA, MPS, ...), copying to the CPU only
what is shown: the corners of the preview and six numbers of stats, gathered on the device
into one small float64 tensor and copied in one transfer. A tensor of at most
PYTHON_STATS_LIMIT elements is copied whole, once, and described as on the CPU.

The copies of one report are started without waiting (`non_blocking`) and waited for
together, once per device, when the report's table is complete (DeviceCopies.finish): a
report synchronises with the device once, however many of its tensors are there. Never
imports torch: every function is given it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from gradrepl.inkernel.values import (
    FULL_STATS_LIMIT,
    PYTHON_STATS_LIMIT,
    SAMPLE_SIZE,
    corner_entries,
    describe_values,
    plain_value,
    preview_of_corner,
    strided_sample,
)

STATS_FIELDS = 6  # square sum, finite min, finite max, nan count, inf count, finite count


class DeviceCopies:
    """One report's copies from accelerators: each description is handed out at once, as a
    dict that `finish` fills in after one wait per device."""

    def __init__(self) -> None:
        self._pending: list[tuple[Callable[[], dict[str, Any]], dict[str, Any], Any]] = []

    def describe(self, torch: Any, t: Any) -> dict[str, Any]:
        target: dict[str, Any] = {}
        if t.numel() <= PYTHON_STATS_LIMIT:
            whole = t.to("cpu", non_blocking=True)
            self._pending.append((lambda: describe_values(torch, whole), target, t.device))
            return target
        packed, gaps, kept_shape, sampled = gathered(torch, t)
        host = packed.to("cpu", non_blocking=True)
        exact = corner_entries(torch, t)[0].to("cpu", non_blocking=True) if wide_integers(torch, t) else None
        dtype, numel = t.dtype, t.numel()

        def build() -> dict[str, Any]:
            return _described(torch, dtype, numel, host.tolist(), exact, gaps, kept_shape, sampled)

        self._pending.append((build, target, t.device))
        return target

    def finish(self, torch: Any) -> None:
        """Wait once for each device copied from, then fill in every description."""
        pending, self._pending = self._pending, []
        for device in {str(device): device for _, _, device in pending}.values():
            synchronize(torch, device)
        for build, target, _ in pending:
            try:
                target.update(build())
            except Exception as exc:
                target.update({"preview": None, "truncated": False, "stats": None,
                               "note": f"{type(exc).__name__}: {exc}"[:200]})


def synchronize(torch: Any, device: Any) -> None:
    """Wait for the work queued on `device` (its torch module's synchronize; none for the CPU)."""
    module = getattr(torch, getattr(device, "type", ""), None)
    wait = getattr(module, "synchronize", None)
    if callable(wait) and getattr(device, "type", "cpu") != "cpu":
        wait(device)


def describe_on_device(torch: Any, t: Any) -> dict[str, Any]:
    """describe_values' result for one tensor on an accelerator, waited for at once."""
    copies = DeviceCopies()
    described = copies.describe(torch, t)
    copies.finish(torch)
    return described


def gathered(torch: Any, t: Any) -> tuple[Any, list[int | None], list[int], bool]:
    """On t's device: its preview's corners, then its stats (over an evenly strided sample
    above FULL_STATS_LIMIT elements), as one flat float64 tensor; with the corners' gaps and
    shape, and whether the stats come from a sample."""
    corner, gaps, kept_shape = corner_entries(torch, t)
    if corner.is_complex():
        corner = torch.view_as_real(corner)
    parts = [] if wide_integers(torch, t) else [corner.reshape(-1).to(torch.float64)]
    sampled = t.numel() > FULL_STATS_LIMIT
    if t.dtype != torch.bool:
        part = strided_sample(t, SAMPLE_SIZE) if sampled else t
        values = part.to(torch.complex128).abs() if part.is_complex() else part.to(torch.float64)
        values = values.reshape(-1)
        nan, inf = torch.isnan(values), torch.isinf(values)
        finite = ~(nan | inf)
        parts.append(torch.stack([
            values.square().sum(),
            torch.where(finite, values, math.inf).min(),
            torch.where(finite, values, -math.inf).max(),
            nan.sum().to(torch.float64), inf.sum().to(torch.float64), finite.sum().to(torch.float64),
        ]))
    return (torch.cat(parts) if parts else corner.new_empty(0, dtype=torch.float64)), gaps, kept_shape, sampled


def wide_integers(torch: Any, t: Any) -> bool:
    """64-bit integers: float64 holds them exactly only up to 2**53, so their corners are
    copied on their own, a second transfer."""
    return t.dtype in (torch.int64, getattr(torch, "uint64", torch.int64))


def _described(torch: Any, dtype: Any, numel: int, host: list[float], exact: Any,
               gaps: list[int | None], kept_shape: list[int], sampled: bool) -> dict[str, Any]:
    """The description from what was copied: corners, then the stats (none for bool)."""
    stats_at = len(host) - (STATS_FIELDS if dtype != torch.bool else 0)
    corner = exact if exact is not None else _corner_back(torch, dtype, host[:stats_at])
    preview = preview_of_corner(corner, gaps, kept_shape)
    truncated = any(g is not None for g in gaps)
    if stats_at == len(host):
        return {"preview": preview, "truncated": truncated, "stats": None}
    square_sum, low, high, nan, inf, finite = host[stats_at:]
    n = int(nan + inf + finite)
    norm = math.sqrt(square_sum * numel / n) if sampled and n else math.sqrt(square_sum)
    stats = {"norm": plain_value(norm), "min": low if finite else None, "max": high if finite else None,
             "nan": int(nan), "inf": int(inf), "sampled": sampled, "sample_size": n}
    return {"preview": preview, "truncated": truncated, "stats": stats}


def _corner_back(torch: Any, dtype: Any, flat: list[float]) -> Any:
    """The corners as the tensor's own kind of values again, from their float64 copy."""
    corner = torch.tensor(flat, dtype=torch.float64)
    if dtype.is_complex:
        return torch.view_as_complex(corner.reshape(-1, 2))
    if dtype == torch.bool:
        return corner.to(torch.bool)
    if not dtype.is_floating_point:
        return corner.to(torch.int64)
    return corner
