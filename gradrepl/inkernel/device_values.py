"""Previews and stats of a tensor on an accelerator (CUDA, MPS, ...), copying to the CPU only
what is shown: the corners of the preview and six numbers of stats, gathered on the device
into one small float64 tensor and copied in one transfer, the one wait for the device a
tensor costs. A tensor of at most PYTHON_STATS_LIMIT elements is copied whole, in one
transfer, and described as on the CPU. Never imports torch: every function is given it.
"""

from __future__ import annotations

import math
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


def describe_on_device(torch: Any, t: Any) -> dict[str, Any]:
    """describe_values' result for a tensor on an accelerator (one transfer, see the module)."""
    numel = t.numel()
    if numel <= PYTHON_STATS_LIMIT:
        return describe_values(torch, t.cpu())
    packed, gaps, kept_shape, sampled = gathered(torch, t)
    host = packed.cpu().tolist()  # the one copy to the CPU
    stats_at = len(host) - (STATS_FIELDS if t.dtype != torch.bool else 0)
    corner = corner_entries(torch, t)[0].cpu() if wide_integers(torch, t) else _corner_back(torch, t, host[:stats_at])
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


def _corner_back(torch: Any, t: Any, flat: list[float]) -> Any:
    """The corners as the tensor's own kind of values again, from their float64 copy."""
    corner = torch.tensor(flat, dtype=torch.float64)
    if t.is_complex():
        return torch.view_as_complex(corner.reshape(-1, 2))
    if t.dtype == torch.bool:
        return corner.to(torch.bool)
    if not t.is_floating_point():
        return corner.to(torch.int64)
    return corner
