"""Benchmark results: raw JSON under bench/results/, and the table `make bench` prints.

Every figure is reported, never asserted: this machine is shared and noisy. Comparisons are
ratios taken side by side in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
ROWS: list[tuple[str, str, str, str]] = []  # (item, measure, figure, target)


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    from django.db import connection

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "database": connection.vendor,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit,
    }


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=1, default=str) + "\n")
    return path


def row(item: str, measure: str, figure: str, target: str = "") -> None:
    ROWS.append((item, measure, figure, target))


def summary(samples: list[float], scale: float = 1.0) -> dict[str, float]:
    """Median, p95 and max of samples (times `scale`), rounded for reading."""
    if not samples:
        return {"n": 0}
    ordered = sorted(s * scale for s in samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "max": round(ordered[-1], 3),
    }


def table() -> str:
    if not ROWS:
        return ""
    widths = [
        max(len(r[i]) for r in [("Item", "Measure", "Figure", "Target"), *ROWS]) for i in range(4)
    ]
    lines = []
    for r in [("Item", "Measure", "Figure", "Target"), *ROWS]:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip())
        if r[0] == "Item":
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
