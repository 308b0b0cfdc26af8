"""replay-seed-sandbox: `gradrepl replay --sandbox` of the seed against plain `gradrepl replay`
(the confinement's cost: Landlock rules, limits, the CPU watch per cell)."""

from __future__ import annotations

import os

from benchmarks.common import GRADREPL, SEED, Row, median
from benchmarks.replay import run_timed

# Linux does not apply the process limit to root: strict mode refuses there, best-effort confines the rest.
MODE = "--sandbox=best-effort" if os.getuid() == 0 else "--sandbox"


def bench_sandbox(rounds: int) -> list[Row]:
    run_timed([str(GRADREPL), "replay", MODE, str(SEED)], cwd=SEED.parent, label="replay (sandboxed, warm-up)")
    confined: list[float] = []
    free: list[float] = []
    for index in range(rounds):
        order = [(True, confined), (False, free)]
        for sandboxed, kept in order if index % 2 == 0 else reversed(order):
            extra = [MODE] if sandboxed else []
            kept.append(run_timed([str(GRADREPL), "replay", *extra, str(SEED)], cwd=SEED.parent,
                                  label=f"replay ({'sandboxed' if sandboxed else 'free'})"))
    ratio = median([a / b for a, b in zip(confined, free, strict=True)])
    return [Row("replay-seed-sandbox", median(confined), "s", "gradrepl replay, not sandboxed", median(free), ratio,
                "ratio <= 1.05", ratio <= 1.05,
                note=f"`gradrepl replay {MODE}` of the seed vs plain `gradrepl replay`; alternating, median of "
                f"{rounds} per-round ratios", samples=confined, anchor_samples=free)]
