"""What a process has used, read from /proc: CPU time (all threads) and resident memory."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) of a process and its live descendants (a
    prefork Celery worker's children do its work)."""
    total = 0.0
    for one in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # exited meanwhile
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def status(pid: int, field: str) -> int:
    """A number from /proc/<pid>/status: "VmRSS" (KiB), "Threads", ..."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def rss_kib(pid: int) -> int:
    return status(pid, "VmRSS")


@contextlib.contextmanager
def profiled(pid: int, name: str) -> Iterator[None]:
    """With BENCH_PYSPY=1 (and py-spy on the PATH), sample `pid` while the block runs and write
    its collapsed stacks to bench/results/profile-<name>.txt (docs/performance.md says how to
    read them). Otherwise, nothing."""
    spy = shutil.which("py-spy")
    if not os.environ.get("BENCH_PYSPY") or spy is None:
        yield
        return
    from tests.bench.report import RESULTS

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"profile-{name}.txt"
    process = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out),
         "--rate", "250", "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        process.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        process.wait(timeout=30)
