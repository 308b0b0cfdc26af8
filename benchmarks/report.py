"""The machine a run measured, the table printed at the end, and bench-results.json."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.common import Row


def machine_info() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "torch": version("torch"),
        "gradrepl": version("gradrepl"),
        "ipykernel": version("ipykernel"),
        "jupyter_client": version("jupyter_client"),
        "nbconvert": version("nbconvert"),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:.2f}"


def result(row: Row) -> str:
    if row.error is not None:
        return "ERROR"
    if row.passed is None:
        return "info"
    return "PASS" if row.passed else "MISS"


def spread(samples: list[float], unit: str) -> str:
    """The lowest and highest sample, as the value is shown ("2.31-2.60 s"): a wide one says the
    row is sensitive to what else the machine does."""
    if len(samples) < 2:
        return "-"
    low, high = fmt(min(samples), unit), fmt(max(samples), unit)
    suffix = f" {unit}" if unit and low.endswith(f" {unit}") else ""
    return f"{low.removesuffix(suffix)}-{high}"


def print_table(rows: list[Row]) -> None:
    header = ["row", "value", "min-max", "anchor", "anchor value", "min-max", "ratio", "target", "result"]
    lines = [
        [
            row.name, fmt(row.value, row.unit), spread(row.samples, row.unit), row.anchor_name,
            fmt(row.anchor_value, row.unit), spread(row.anchor_samples, row.unit),
            "-" if row.ratio is None else f"{row.ratio:.2f}x", row.target, result(row),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    right = {1, 2, 4, 5, 6}

    def render(cells: list[str]) -> str:
        padded = (cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded).rstrip()

    print(render(header))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(render(line))
    for row in rows:
        if row.error is not None:
            print(f"  {row.name}: {row.error}")


def write_results(path: Path, info: dict[str, Any], rows: list[Row]) -> None:
    path.write_text(json.dumps({"machine": info, "rows": [row.to_json() for row in rows]}, indent=1) + "\n")
