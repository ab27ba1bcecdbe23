"""Drive the MaxContact simulator from tests: start the process, reset it, steer it, inspect it.

The simulator runs as its own process (`python -m telephony.simulator`) and is steered through
its /_sim/ control endpoints; nothing here imports the simulator's code.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 10.0
_STDERR: dict[int, IO[str]] = {}


class SimulatorControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Simulator:
    """A running simulator: `base_url` is what a client is configured with."""

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url.rstrip("/")
        self.base_url = f"{self.root_url}/webservices"
        self._http = requests.Session()

    def _call(self, method: str, action: str, payload: dict[str, Any] | None = None) -> Any:
        response = self._http.request(
            method, f"{self.root_url}/_sim/{action}", json=payload, timeout=10
        )
        body = response.json()
        if response.status_code >= 400:
            raise SimulatorControlError(response.status_code, body.get("error", ""))
        return body

    def reset(self) -> None:
        self._call("POST", "reset")

    def offer(self, user_id: int, **kw: Any) -> dict[str, Any]:
        """An inbound call for the agent (phone=, lead_id=, force=, ring_seconds=)."""
        call: dict[str, Any] = self._call("POST", "offer", {"user_id": user_id, **kw})
        return call

    def add_lead(self, name: str, phone: str, name2: str | None = None) -> int:
        """A lead with the given names and one phone; returns its id."""
        payload = {"name": name, "phone": phone, "name2": name2}
        return int(self._call("POST", "lead", payload)["lead_id"])

    def customer_hangup(self, call_id: int) -> None:
        self._call("POST", "customer-hangup", {"call_id": call_id})

    def set_agent_state(self, user_id: int, state: str) -> None:
        self._call("POST", "agent-state", {"user_id": user_id, "state": state})

    def token_lifetime(self, seconds: float) -> None:
        self._call("POST", "token-lifetime", {"seconds": seconds})

    def expire_tokens(self) -> None:
        self._call("POST", "expire-tokens")

    def config(self, **kw: Any) -> dict[str, Any]:
        current: dict[str, Any] = self._call("POST", "config", kw)
        return current

    def fault(self, kind: str, **kw: Any) -> None:
        """Arm a fault: count=, path_contains=, delay=, status=, apply= (docs/simulator.md)."""
        self._call("POST", "faults", {"kind": kind, **kw})

    def faults(self) -> list[dict[str, Any]]:
        """The faults still armed (a fault is gone once its count is used up)."""
        armed: list[dict[str, Any]] = self._call("GET", "faults")
        return armed

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def requests(self, path_contains: str | None = None) -> list[dict[str, Any]]:
        """Every vendor request received, oldest first; optionally only paths containing text."""
        log: list[dict[str, Any]] = self._call("GET", "requests")
        if path_contains is None:
            return log
        return [r for r in log if path_contains.lower() in r["path"].lower()]

    def counts(self) -> dict[str, Any]:
        """Vendor requests counted by method and user id since the reset (see docs/simulator.md)."""
        counted: dict[str, Any] = self._call("GET", "counts")
        return counted

    def clear_counts(self) -> None:
        self._call("DELETE", "counts")

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def state(self) -> dict[str, Any]:
        world: dict[str, Any] = self._call("GET", "state")
        return world


def start_simulator(
    *extra_args: str, quiet: bool = True
) -> tuple[subprocess.Popen[str], Simulator]:
    """Start `python -m telephony.simulator --port 0` and wait for its listening line."""
    stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop_simulator)
    args = [sys.executable, "-m", "telephony.simulator", "--port", "0"]
    args += ["--quiet"] if quiet else []
    process = subprocess.Popen(
        [*args, *extra_args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    _STDERR[process.pid] = stderr
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=START_TIMEOUT)
    except queue.Empty:
        first = ""
    prefix = "MaxContact simulator listening on "
    if not first.startswith(prefix):
        text = stop_simulator(process)
        raise RuntimeError(f"simulator did not start (got {first!r}); stderr:\n{text}")
    base_url = first[len(prefix) :].strip()
    return process, Simulator(base_url.removesuffix("/webservices"))


def stop_simulator(process: subprocess.Popen[str]) -> str:
    """Stop it with SIGTERM (SIGKILL if it lingers) and return what it wrote to stderr."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()
    stderr = _STDERR.pop(process.pid, None)
    if stderr is None:
        return ""
    with stderr:
        stderr.seek(0)
        return stderr.read()


@pytest.fixture(scope="session")
def simulator_process() -> Iterator[Simulator]:
    process, simulator = start_simulator()
    try:
        yield simulator
    finally:
        stop_simulator(process)


@pytest.fixture
def simulator(simulator_process: Simulator) -> Simulator:
    simulator_process.reset()
    return simulator_process
