"""What every bench row shares: paths, the row record, one-line errors, medians."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.terminal import TerminalError

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
SEED = REPO / "examples" / "seed_autograd.py"
GRADREPL = VENV / "bin" / "gradrepl"
TERM_COLUMNS, TERM_LINES = 120, 40


class BenchError(Exception):
    """A row could not be measured; str() is one line."""


@dataclass
class Row:
    name: str
    value: float | None
    unit: str
    anchor_name: str
    anchor_value: float | None
    ratio: float | None
    target: str
    # True / False against the target; None for info rows and rows that failed.
    passed: bool | None
    note: str = ""
    error: str | None = None
    samples: list[float] = field(default_factory=list)
    anchor_samples: list[float] = field(default_factory=list)
    # Further figures of the row (JSON only), e.g. a maximum beside the median.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["pass"] = data.pop("passed")
        for key in ("samples", "anchor_samples"):
            if data[key]:
                data[f"{key.removesuffix('samples')}min"] = min(data[key])
                data[f"{key.removesuffix('samples')}max"] = max(data[key])
        return data


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, (BenchError, TerminalError)):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def problems_note(problems: list[str]) -> str:
    return ("; " + "; ".join(sorted(set(problems)))) if problems else ""


def alternating(index: int, first: str, second: str) -> list[str]:
    """The two names in one order on even rounds and the other on odd ones, so drift hits both alike."""
    return [first, second] if index % 2 == 0 else [second, first]


def time_calls(fn: Callable[[], Any], count: int, warmup: int = 2) -> list[float]:
    """Milliseconds of `count` calls of fn, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def mlp_256(torch: Any) -> tuple[Any, Any, Any, Any]:
    """The MLP of the backward-log, node-grads and nan-check rows (seeded): 4 layers of 256,
    ReLU between, SGD, a batch of 256 with 10 classes. (model, optimizer, inputs, targets)."""
    torch.manual_seed(0)
    layers: list[Any] = []
    for index in range(4):
        layers += [torch.nn.Linear(256, 256 if index < 3 else 10)] + ([torch.nn.ReLU()] if index < 3 else [])
    model = torch.nn.Sequential(*layers)
    return model, torch.optim.SGD(model.parameters(), lr=0.01), torch.randn(256, 256), torch.randint(0, 10, (256,))
