"""A series of numbers as one line of block characters: ▁▂▃▄▅▆▇█, lowest to highest."""

from __future__ import annotations

import math
from collections.abc import Sequence

BARS = "▁▂▃▄▅▆▇█"
NOT_KNOWN = "·"  # a value not taken
NOT_FINITE = "!"  # nan or inf


def sparkline(values: Sequence[float | str | None], width: int = 40) -> str:
    """`values` in at most `width` characters, each the largest of the values it stands for
    (a spike stays visible), scaled from the smallest to the largest finite value; a value
    not known (None) is "·", one not finite ("nan", "inf" or a float) is "!". All equal: the
    lowest bar throughout."""
    if not values or width <= 0:
        return ""
    bins = _binned(values, width)
    finite = [v for v in bins if isinstance(v, float)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
    span = high - low
    line = []
    for value in bins:
        if value is None:
            line.append(NOT_KNOWN)
        elif not isinstance(value, float):
            line.append(NOT_FINITE)
        elif span <= 0:
            line.append(BARS[0])
        else:
            line.append(BARS[min(len(BARS) - 1, int((value - low) / span * len(BARS)))])
    return "".join(line)


def _binned(values: Sequence[float | str | None], width: int) -> list[float | str | None]:
    """The values in `width` bins at most, each bin the largest of its values ("!" beats any number)."""
    count = len(values)
    bins = min(count, width)
    result: list[float | str | None] = []
    for index in range(bins):
        chunk = values[index * count // bins:(index + 1) * count // bins]
        largest: float | str | None = None
        for raw in chunk:
            value = _plain(raw)
            if value is None or isinstance(largest, str):  # nothing to add, or "!" has won already
                continue
            if isinstance(value, str) or largest is None or value > largest:
                largest = value
        result.append(largest)
    return result


def _plain(value: float | str | None) -> float | str | None:
    """A float as itself, nan and inf (as floats or as text) as "!", anything else as None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return NOT_FINITE if value in ("nan", "inf", "-inf") else None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else NOT_FINITE
    return None
