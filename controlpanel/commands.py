"""The command lines of the panel's own processes, written once.

`make run` (scripts/devstack.py), the test servers (tests/servers.py) and the screenshot
script start these; docs/live.md lists the same commands for a deployment.
"""

from __future__ import annotations

import sys


def panel(host: str, port: int, *, python: str = sys.executable) -> list[str]:
    """uvicorn serving the ASGI app (streaming needs ASGI; graceful shutdown bounded)."""
    return [
        python, "-m", "uvicorn", "controlpanel.asgi:application",
        "--host", host, "--port", str(port),
        "--lifespan", "off", "--no-access-log", "--timeout-graceful-shutdown", "2",
    ]  # fmt: skip


def celery_worker(*extra: str, python: str = sys.executable) -> list[str]:
    return [
        python, "-m", "celery", "-A", "controlpanel", "worker", "-Q", "celery,poll",
        "--without-gossip", "--without-mingle", "-l", "warning", *extra,
    ]  # fmt: skip


def celery_beat(schedule: str, *, python: str = sys.executable) -> list[str]:
    return [python, "-m", "celery", "-A", "controlpanel", "beat", "-l", "warning", "-s", schedule]
