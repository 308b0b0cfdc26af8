"""Where a NaN or an Inf was born (protocol.NonFinite), as text for every front end."""

from __future__ import annotations

from collections.abc import Sequence

from gradrepl.protocol import GradPreview, NonFinite, SavedValue
from gradrepl.render.chain_rule import value_text
from gradrepl.render.graph_labels import shape_label
from gradrepl.render.text import counted


def what_is_not_finite(value: GradPreview | None) -> str:
    """"nan" / "inf" / "2 nan, 1 inf of 4" for a result; "finite" for one that is."""
    if value is None:
        return "None"
    stats = value.values.stats
    if stats is None:
        return value_text(value)
    parts = [f"{stats.nan:,} nan" if stats.nan else "", f"{stats.inf:,} inf" if stats.inf else ""]
    found = ", ".join(part for part in parts if part)
    if not found:
        return "finite"
    return f"{found} of {stats.sample_size:,}" if stats.sample_size > 1 else found


def _values(value: GradPreview | None) -> str:
    if value is None:
        return "None"
    return f"{shape_label(value.shape, value.dtype)} {value_text(value)}"


def _saved_label(value: SavedValue) -> str:
    return f"{value.name} ({value.tensor})" if value.tensor else value.name


def birth_lines(births: Sequence[NonFinite]) -> list[str]:
    """The first birth in full (its op, where, what went in, what came out); the others one line each."""
    if not births:
        return []
    first = births[0]
    made = "made" if first.phase == "forward" else "passed on"
    lines = [f"the first non-finite value: {first.op} {made} {', '.join(what_is_not_finite(v) for v in first.output)} "
             f"from finite {'inputs' if first.phase == 'forward' else 'gradients'}, at {first.where}"
             + ("" if first.phase == "forward" else " (where its node was made)" if first.line is not None else "")]
    if first.source:
        lines.append(f"  {first.source}")
    inherited = first.saved_nonfinite if first.phase == "backward" else ()
    if inherited:
        held = "; ".join(f"{_saved_label(value)} holds {what_is_not_finite(value.value)}" for value in inherited)
        lines.append(f"  not made here: its saved {held}, from the forward pass")
    label = "input" if first.phase == "forward" else "grad in"
    for index, value in enumerate(first.inputs):
        lines.append(f"  {label} {index}: {_values(value)}")
    out = "output" if first.phase == "forward" else "grad out"
    for index, value in enumerate(first.output):
        lines.append(f"  {out} {index}: {_values(value)}")
    for saved in inherited:
        lines.append(f"  saved {_saved_label(saved)}: {_values(saved.value)}")
    if len(births) > 1:
        lines.append(f"  then {counted(len(births) - 1, 'more birth')}: "
                     + "; ".join(f"{b.op} at {b.where}" for b in births[1:4]) + ("; …" if len(births) > 4 else ""))
    return lines
