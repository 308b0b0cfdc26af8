"""Gradient health, as every front end says it: the alerts a table of tensors raises
(vanishing: most of a module's tensors have ‖grad‖/‖param‖ below a threshold; exploding: one
above another, or a grad not finite), and a tensor's grad norm over calls as text. Pure: it
reads protocol.TensorInfo's grad_history."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from gradrepl.protocol import EXPLODING_RATIO, VANISHING_RATIO, GradHistory, HealthAlert, TensorInfo
from gradrepl.render.sparkline import sparkline
from gradrepl.render.text import counted, number


def module_of(info: TensorInfo) -> str:
    """The module a parameter belongs to ("model.0"); a tensor of no module stands alone."""
    return ".".join(info.module_path) if info.module_path else info.name


def alerts(tensors: Sequence[TensorInfo], vanishing: float = VANISHING_RATIO, exploding: float = EXPLODING_RATIO,
           since: Mapping[str, int] | None = None) -> list[HealthAlert]:
    """The modules whose gradients vanish or explode at their latest call, in table order;
    with `since` (a tensor's name -> the last call already judged), only what came after it."""
    groups: dict[str, list[TensorInfo]] = {}
    for info in tensors:
        history = info.grad_history
        if history is None or not history.calls:
            continue
        if since is not None and since.get(info.name, 0) >= history.calls[-1]:
            continue
        groups.setdefault(module_of(info), []).append(info)
    found = []
    for module, members in groups.items():
        call = max(m.grad_history.calls[-1] for m in members if m.grad_history)
        ratios = [(m.name, m.grad_history.ratio()) for m in members if m.grad_history]
        broken = [(name, r) for name, r in ratios if isinstance(r, str) or (isinstance(r, float) and r > exploding)]
        if broken:
            worst = next((r for _, r in broken if isinstance(r, str)), None) or max(float(r) for _, r in broken)
            found.append(HealthAlert("exploding", module, tuple(name for name, _ in broken), len(ratios), worst, call))
            continue
        small = [(name, r) for name, r in ratios if isinstance(r, float) and r < vanishing]
        if small and 2 * len(small) > len(ratios):
            found.append(HealthAlert("vanishing", module, tuple(name for name, _ in small), len(ratios),
                                     min(float(r) for _, r in small), call))
    return found


def alert_lines(found: Sequence[HealthAlert], vanishing: float = VANISHING_RATIO,
                exploding: float = EXPLODING_RATIO) -> list[str]:
    """One line per kind: "vanishing gradients in model.0, model.2: ‖grad‖/‖param‖ down to 4.8e-08 (below 1e-06)"."""
    lines = []
    for kind in ("exploding", "vanishing"):
        these = [alert for alert in found if alert.kind == kind]
        if not these:
            continue
        modules = ", ".join(alert.module for alert in these[:8]) + (f" and {len(these) - 8} more" if len(these) > 8 else "")
        ratios = [alert.ratio for alert in these]
        if kind == "vanishing":
            worst = min(r for r in ratios if isinstance(r, float))
            lines.append(f"vanishing gradients in {modules}: ‖grad‖/‖param‖ down to {number(worst)} "
                         f"(below {number(vanishing)}) at backward call {these[0].call}")
        else:
            odd = next((r for r in ratios if isinstance(r, str)), None)
            worst_text = odd or number(max(r for r in ratios if isinstance(r, float)))
            lines.append(f"exploding gradients in {modules}: ‖grad‖/‖param‖ {worst_text} "
                         f"({'not finite' if odd else f'above {number(exploding)}'}) at backward call {these[0].call}")
    return lines


def ratios(history: GradHistory) -> list[float | str | None]:
    return [history.ratio(at) for at in range(len(history.calls))]


def timeline(history: GradHistory, width: int = 40) -> list[str]:
    """A tensor's grad norm and ‖grad‖/‖param‖ over the calls that wrote it: a sparkline each,
    with the first and last values."""
    if not history.calls:
        return []
    first, last = history.calls[0], history.calls[-1]
    span = f"calls {first}-{last}" if first != last else f"call {first}"
    if history.every > 1:
        span += f", every {history.every}th"
    lines = [f"{'‖grad‖':<15}{sparkline(history.grad_norm, width)}  {_ends(history.grad_norm)}"]
    lines.append(f"{'‖grad‖/‖param‖':<15}{sparkline([log_ratio(r) for r in ratios(history)], width)}  {_ends(ratios(history))}")
    lines.append(f"({counted(len(history.calls), 'point')}, {span})")
    return lines


def _ends(values: Sequence[float | str | None]) -> str:
    return f"{number(values[0])} → {number(values[-1])}" if len(values) > 1 else number(values[0])


def log_ratio(value: float | str | None) -> float | str | None:
    """Ratios span decades: drawn on a log scale."""
    if isinstance(value, float) and value > 0:
        return math.log10(value)
    return value
