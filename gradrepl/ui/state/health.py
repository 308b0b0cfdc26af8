"""The app's gradient health alerts: after each cell, the modules whose gradients vanish or
explode at the calls it ran (render.health), said under the cell. Thresholds: the command
line's --vanishing / --exploding, else config.toml's `vanishing_ratio` / `exploding_ratio`,
else protocol's defaults."""

from __future__ import annotations

from collections.abc import Sequence

from gradrepl.protocol import EXPLODING_RATIO, VANISHING_RATIO, TensorInfo
from gradrepl.render.health import alert_lines, alerts
from gradrepl.ui.state.config import Settings


class HealthWatch:
    def __init__(self, settings: Settings, vanishing: float | None = None, exploding: float | None = None) -> None:
        self.vanishing = vanishing or settings.ratio("vanishing_ratio", VANISHING_RATIO)
        self.exploding = exploding or settings.ratio("exploding_ratio", EXPLODING_RATIO)
        self._judged: dict[str, int] = {}  # a tensor's name -> the last backward call judged

    def lines(self, tensors: Sequence[TensorInfo]) -> list[str]:
        """What the calls since the last cell showed: one line per kind of alert, or none."""
        found = alerts(tensors, self.vanishing, self.exploding, since=self._judged)
        self._judged.update({t.name: t.grad_history.calls[-1] for t in tensors
                             if t.grad_history is not None and t.grad_history.calls})
        return alert_lines(found, self.vanishing, self.exploding)
