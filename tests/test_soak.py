"""Soak: many agents present at once, each with an SSE stream, calls arriving and ending, the
worker polling them all. Bounded in time, loopback only.

Halfway through, MaxContact misbehaves for everyone at once (503s, garbage, truncated and
dropped answers, answers slower than the read timeout, every token expired): the pollers back
off, the panels say so, and every agent comes back by herself when MaxContact does. The
uvicorn, worker and beat processes' own output is read for errors and tracebacks.

`make test` runs it small (SOAK_AGENTS=25 for SOAK_SECONDS=20). The full run, with its figures
(memory sampled every 10 s) written to bench/results/soak-*.json:
    SOAK_AGENTS=300 SOAK_SECONDS=600 .venv/bin/pytest -q -s tests/test_soak.py
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

from controlpanel import live
from telephony.client import ClientConfig, Credentials, MaxContactClient, MemoryTokenStore
from telephony.errors import MaxContactError
from telephony.models import AgentAccount
from telephony.simulator.world import crowd_agents
from tests.crowd import make_agents
from tests.servers import watch
from tests.simulator_control import SimulatorControlError, start_simulator, stop_simulator
from tests.sse import SSEClient

pytestmark = pytest.mark.django_db(transaction=True)

AGENTS = int(os.environ.get("SOAK_AGENTS", "25"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))
RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Floor:
    """The contact-centre floor: customers call in, talk a little, hang up; agents dispose
    (from their phones, straight to MaxContact), go ready again."""

    def __init__(self, sim, agents, stop: threading.Event) -> None:
        self.sim = sim
        self.stop = stop
        self.clients = {
            seed.user_id: MaxContactClient(
                ClientConfig(base_url=sim.base_url),
                credentials=Credentials(login=seed.login, password=seed.password),
                user_id=seed.user_id,
                token_store=MemoryTokenStore(),
            )
            for seed in agents
        }
        self.calls = 0
        self.errors: list[str] = []
        self.paused = threading.Event()  # the floor holds still while MaxContact is broken
        self.still = threading.Event()  # ...and says so once its request in flight is done

    def run(self) -> None:
        rng = random.Random(7)
        ids = list(self.clients)
        while not self.stop.is_set():
            if self.paused.is_set():
                self.still.set()
                self.stop.wait(0.05)
                continue
            self.still.clear()
            user_id = rng.choice(ids)
            client = self.clients[user_id]
            try:
                calls = client.get_calls()
                if not calls:
                    client.go_ready()
                    self.sim.offer(user_id, phone="07700900123")
                    self.calls += 1
                elif calls[0].state == 4:  # ended (the simulator's CallState): dispose
                    client.dispose(call_id=calls[0].call_id, result_code="SALE")
                else:
                    self.sim.customer_hangup(calls[0].call_id)
            except (MaxContactError, SimulatorControlError) as error:
                self.errors.append(f"{user_id}: {error}")
            self.stop.wait(0.02)


def test_many_agents_stay_current_without_errors_or_growth(live_stack, caplog):
    proc, sim = start_simulator("--crowd", str(AGENTS))
    streams: list[tuple[AgentAccount, SSEClient]] = []
    try:
        seeds = crowd_agents(AGENTS)
        for account, _client, session in make_agents(sim, AGENTS):
            stream = SSEClient(f"{live_stack.url}/panel/stream", {"sessionid": session})
            streams.append((account, stream))
        for _account, stream in streams:
            stream.next(timeout=30)  # every panel got its first state

        time.sleep(3)  # warm: every agent polled at least once
        processes = {
            "uvicorn": live_stack.panel.process,
            "worker": live_stack.worker,
            "beat": live_stack.beat,
        }
        marks = {name: watch(process).mark() for name, process in processes.items()}
        samples: list[dict[str, float]] = []

        def sample() -> dict[str, float]:
            row = {"t": round(time.monotonic() - started, 1)}
            for name in ("uvicorn", "worker"):
                row[name] = rss_kib(processes[name].pid)
            samples.append(row)
            return row

        stop = threading.Event()
        floor = Floor(sim, seeds, stop)
        driver = threading.Thread(target=floor.run, daemon=True)
        started = time.monotonic()
        memory_start = sample()
        driver.start()
        sampler_stop = threading.Event()

        def sampler() -> None:
            while not sampler_stop.wait(10):
                sample()

        threading.Thread(target=sampler, daemon=True).start()
        time.sleep(SECONDS / 2)
        outage = break_maxcontact(sim, floor, [account.pk for account, _ in streams])
        time.sleep(SECONDS / 2)
        stop.set()
        driver.join(timeout=10)
        sampler_stop.set()
        duration = time.monotonic() - started
        time.sleep(3)  # the last changes reach every panel

        memory_end = sample()
        problems = {
            name: watch(process).problems_since(marks[name]) for name, process in processes.items()
        }
        behind = []
        for account, stream in streams:
            snapshot = live.snapshot(account.pk)
            # Current: the newest workspace this stream received is the agent's latest one.
            if snapshot is None or stream.last_id != str(snapshot["version"]):
                behind.append(account.pk)
        for _account, stream in streams:
            stream.close()
        streams.clear()
        time.sleep(live.CRM_LEASE)
        stuck_locks = list(live.client().scan_iter(f"{live.PREFIX}lock:*"))
        errors = [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
        figures = {
            "agents": AGENTS,
            "seconds": round(duration, 1),
            "calls_offered": floor.calls,
            "floor_errors": len(floor.errors),
            "panel_errors": len(errors),
            "outage": outage,
            "process_log_problems": {name: len(lines) for name, lines in problems.items()},
            "streams_behind": len(behind),
            "stuck_locks": len(stuck_locks),
            "memory_kib_start": memory_start,
            "memory_kib_end": memory_end,
            "memory_kib_samples": samples,
            "worker_alive": live_stack.worker.poll() is None,
        }
        print("soak:", json.dumps(figures))
        if AGENTS >= 100:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"soak-{AGENTS}x{int(SECONDS)}s.json").write_text(
                json.dumps(figures, indent=1)
            )
        assert floor.calls > AGENTS / 5
        assert floor.errors == [], floor.errors[:5]
        assert errors == []
        assert all(lines == [] for lines in problems.values()), problems
        assert outage["faults_left"] == [], outage
        # The pollers saw the outage and backed off (an agent's 1 s interval, doubled at least)...
        assert outage["most_errors_seen"] > 0 and outage["longest_interval_s"] >= 2, outage
        assert outage["agents_still_failing"] == 0  # ...and every agent came back
        assert behind == [], f"{len(behind)} of {AGENTS} panels are not current"
        assert stuck_locks == []
        assert figures["worker_alive"]
        for name in ("uvicorn", "worker"):  # no growth beyond noise over the run
            assert memory_end[name] < memory_start[name] * 1.5 + 20_000, figures

    finally:
        for _account, stream in streams:
            stream.close()
        stop_simulator(proc)


def break_maxcontact(sim, floor: Floor, account_ids: list[int]) -> dict:
    """MaxContact fails every way we know at once, for a while; returns what the pollers did.

    The floor holds still meanwhile (its own requests would consume the faults). Ends when every
    agent has polled successfully again (each one's error count back to 0)."""
    r = live.client()
    floor.paused.set()
    assert floor.still.wait(10), "the floor did not hold still"
    began = time.monotonic()
    agents = len(account_ids)
    # A read is tried three times: three faults in a row make one failed poll. About two
    # failed polls per agent: each failure doubles her interval, so more would only make the
    # test wait out the backoff (30 s at most).
    faults = [
        {"kind": "status", "status": 503, "count": agents},
        {"kind": "garbage", "count": agents // 2},
        {"kind": "status", "status": 500, "count": agents // 2},
        {"kind": "truncate", "count": agents // 2},
        {"kind": "drop", "count": 3},
        {"kind": "latency", "delay": 9.0, "count": 3},  # beyond the 8 s read timeout
    ]
    sim.expire_tokens()
    for fault in faults:
        sim.fault(path_contains="getcalls", **fault)
    most_errors, longest_interval = 0, 0.0
    left: list = []
    failing = agents
    deadline = time.monotonic() + 120  # the backoff reaches 30 s at most
    while time.monotonic() < deadline:
        time.sleep(0.2)
        rows = [r.hgetall(f"{live.PREFIX}agent:{pk}") for pk in account_ids]
        errors = [int(row.get("errors", 0)) for row in rows]
        most_errors = max(most_errors, *errors)
        # The interval of agents whose polls are failing: their backoff, not an idle agent's 5 s.
        longest_interval = max(
            longest_interval,
            *(float(row.get("interval", 0)) for row in rows if int(row.get("errors", 0))),
            0.0,
        )
        left = sim.faults()
        failing = sum(1 for e in errors if e)
        if not left and failing == 0:
            break
    floor.paused.clear()
    return {
        "faults": [f"{f['kind']}x{f['count']}" for f in faults] + ["expired tokens"],
        "most_errors_seen": most_errors,
        "longest_interval_s": longest_interval,
        "recovered_after_s": round(time.monotonic() - began, 1),
        "faults_left": left,
        "agents_still_failing": failing,
    }
