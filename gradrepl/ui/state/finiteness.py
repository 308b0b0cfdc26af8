"""For each named tensor, the last cell after which its data (and its grad) was finite: with
--nan-check or without, the probe's stats say whether a tensor holds nan or inf."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gradrepl.protocol import TensorInfo, Values


def holds_nonfinite(values: Values | None) -> bool:
    stats = values.stats if values is not None else None
    return stats is not None and bool(stats.nan or stats.inf)


@dataclass
class Finiteness:
    last_finite: int | None = None  # the last cell after which it was finite
    nonfinite_since: int | None = None  # the first cell after which it was not, since then


class FiniteHistory:
    """Updated after every cell with the probe's table; asked by the tensor detail."""

    def __init__(self) -> None:
        self.data: dict[str, Finiteness] = {}
        self.grad: dict[str, Finiteness] = {}

    def update(self, cell: int | None, tensors: Mapping[str, TensorInfo]) -> None:
        for name, info in tensors.items():
            for book, values in ((self.data, info.data), (self.grad, info.grad)):
                if values is None or values.stats is None:
                    continue
                seen = book.setdefault(name, Finiteness())
                if holds_nonfinite(values):
                    if seen.nonfinite_since is None:
                        seen.nonfinite_since = cell
                else:
                    seen.last_finite, seen.nonfinite_since = cell, None

    def said(self, name: str, which: str) -> str | None:
        """"not finite since In [5] (finite after In [4])" for a tensor that holds nan or inf now; else None."""
        seen = (self.data if which == "data" else self.grad).get(name)
        if seen is None or seen.nonfinite_since is None:
            return None
        since = f"In [{seen.nonfinite_since}]" if seen.nonfinite_since is not None else "?"
        last = f"finite after In [{seen.last_finite}]" if seen.last_finite is not None else "never finite here"
        return f"not finite since {since} ({last})"
