"""Benchmarks 2, 3, 4 and 6: freshness, the poller's cost, idle streams, poll efficiency.

Real processes on loopback: the simulator with a crowd of agents, Redis, uvicorn, a Celery
worker (one process, so its CPU is one core's worth at most) and beat. The bench process holds
one SSE stream per present agent on an asyncio loop (tests/bench/crowd.py).

For each crowd size (BENCH_AGENTS, default "50,200,1000"):
- steady state, every agent ready (polled at the 1 s active interval): each process's CPU time
  over a window, divided by the getcalls requests the simulator counted in it;
- freshness: calls offered to agents at random moments, then hung up by the customer; the time
  from the simulator's change to the fragment arriving on that agent's stream;
- uvicorn's RSS before and after opening the streams (memory per idle connection).
At 200 agents, side by side: the same agents with no stream, each page polling
/panel/workspace every second (the panel's fallback, and how VICIdial's agent screen works).
"""

from __future__ import annotations

import os
import random
import time
import uuid

import pytest
from django.urls import reverse

from controlpanel import live
from tests.bench import report
from tests.bench.crowd import Crowd
from tests.bench.procs import cpu_seconds, profiled, rss_kib, status
from tests.crowd import make_agents
from tests.servers import start_panel, stop
from tests.simulator_control import start_simulator, stop_simulator

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]
SIZES = [int(n) for n in os.environ.get("BENCH_AGENTS", "50,200,1000").split(",")]
WINDOW = float(os.environ.get("BENCH_WINDOW", "15"))
TRIALS = int(os.environ.get("BENCH_TRIALS", "60"))


class Meter:
    """CPU seconds of each process and the simulator's request counts, over a window."""

    def __init__(self, pids: dict[str, int], sim) -> None:
        self.pids = pids
        self.sim = sim

    def read(self) -> dict:
        counts = self.sim.counts()["by_method"]
        return {
            "at": time.monotonic(),
            "cpu": {name: cpu_seconds(pid) for name, pid in self.pids.items()},
            "getcalls": counts.get("getcalls", 0),
            "requests": sum(counts.values()),
        }

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        seconds = after["at"] - before["at"]
        return {
            "seconds": round(seconds, 2),
            "cpu": {k: round(after["cpu"][k] - before["cpu"][k], 3) for k in before["cpu"]},
            "getcalls": after["getcalls"] - before["getcalls"],
            "requests": after["requests"] - before["requests"],
        }


def wait_all(expectations, timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(e.arrived is None for e in expectations):
        time.sleep(0.05)
    return [e.arrived - e.since for e in expectations if e.arrived is not None]


def test_live_capacity(live_stack, redis_server):
    biggest = max(SIZES)
    proc, sim = start_simulator("--crowd", str(biggest), "--quiet")
    crowd = Crowd(live_stack.url)
    results: dict = {"sizes": {}, "window_s": WINDOW}
    try:
        agents = make_agents(sim, biggest)
        for _account, client, _cookie in agents:  # every agent ready: the 1 s interval
            client.post(reverse("go-ready"), {"key": uuid.uuid4().hex}, HTTP_HX_REQUEST="true")
        pids = {
            "worker": live_stack.worker.pid,
            "uvicorn": live_stack.panel.process.pid,
            "beat": live_stack.beat.pid,
            "redis": redis_server.process.pid,
            "simulator": proc.pid,
        }
        meter = Meter(pids, sim)
        rng = random.Random(11)
        used: set[int] = set()
        # Warm uvicorn up (imports, templates, the hub) before measuring what streams cost.
        crowd.open_streams({a.pk: cookie for a, _c, cookie in agents[-10:]})
        time.sleep(2)
        crowd.close_streams()
        time.sleep(2)

        for size in sorted(SIZES):
            present = agents[:size]
            rss_before = rss_kib(pids["uvicorn"])
            crowd.open_streams({a.pk: cookie for a, _c, cookie in present})
            time.sleep(3)  # every agent polled at least once; streams idle
            rss_after = rss_kib(pids["uvicorn"])
            threads = status(pids["uvicorn"], "Threads")

            with profiled(pids["worker"], f"worker-{size}"):
                before = meter.read()
                time.sleep(WINDOW)
                steady = Meter.delta(before, meter.read())

            # Freshness: offers at random moments of the tick, then hang-ups.
            chosen = [a for a in present if a[0].pk not in used][: min(TRIALS, size)]
            used.update(a[0].pk for a in chosen)
            offers, calls = [], {}
            for account, _c, _cookie in chosen:
                time.sleep(rng.uniform(0.05, 0.3))
                since = time.monotonic()
                call = sim.offer(account.remote_user_id)
                calls[account.pk] = call["CallId"]
                offers.append(crowd.expect(account.pk, f'id="call-{call["CallId"]}"', since))
            offered = wait_all(offers, 30)
            hangups = []
            for account, _c, _cookie in chosen:
                time.sleep(rng.uniform(0.05, 0.3))
                since = time.monotonic()
                sim.customer_hangup(calls[account.pk])
                hangups.append(crowd.expect(account.pk, "needs a result", since))
            hung = wait_all(hangups, 30)
            for account, client, _cookie in chosen:  # dispose and go ready again, as agents do
                call_id = calls[account.pk]
                client.post(
                    reverse("dispose", args=[call_id]),
                    {f"c{call_id}-key": uuid.uuid4().hex, f"c{call_id}-result_code": "SALE"},
                    HTTP_HX_REQUEST="true",
                )
                client.post(reverse("go-ready"), {"key": uuid.uuid4().hex}, HTTP_HX_REQUEST="true")

            polls = max(1, steady["getcalls"])
            worker_ms = 1000 * steady["cpu"]["worker"] / polls
            ours = sum(steady["cpu"][k] for k in ("worker", "uvicorn", "beat", "redis"))
            fresh = report.summary(offered + hung)
            results["sizes"][size] = {
                "steady": steady,
                "worker_cpu_ms_per_poll": round(worker_ms, 3),
                "server_cpu_ms_per_agent_second": round(1000 * ours / size / steady["seconds"], 3),
                "getcalls_per_agent_minute": round(
                    60 * steady["getcalls"] / size / steady["seconds"], 1
                ),
                "freshness_s": fresh,
                "freshness_offer_s": report.summary(offered),
                "freshness_hangup_s": report.summary(hung),
                "missed": len(offers) + len(hangups) - len(offered) - len(hung),
                "uvicorn_rss_kib": [rss_before, rss_after],
                "rss_per_stream_kib": round((rss_after - rss_before) / size, 1),
                "uvicorn_threads": threads,
            }
            r = results["sizes"][size]
            report.row(
                "2 freshness",
                f"{size} agents, 1 s interval",
                f"p50 {fresh.get('p50', 0):.2f} s, p95 {fresh.get('p95', 0):.2f} s"
                f" ({fresh['n']} changes, {r['missed']} missed)",
                "p50 <= 0.7, p95 <= 1.3 s at 200; p95 <= 1.5 s at 1,000",
            )
            report.row(
                "3 poll cost",
                f"{size} agents",
                f"worker {worker_ms:.2f} ms CPU/poll ({1000 / worker_ms:.0f} agents/core); "
                f"simulator {1000 * steady['cpu']['simulator'] / polls:.2f} ms/request",
                "<= 1 ms/poll (>= 1,000 agents/core)",
            )
            report.row(
                "6 poll efficiency",
                f"{size} agents ready",
                f"{r['getcalls_per_agent_minute']:.1f} getcalls/agent/minute",
                "< 60",
            )

            if size <= 200:
                results["sizes"][size]["browser_polling"] = compare_browser_polling(
                    crowd, meter, present, results["sizes"][size]
                )
            crowd.close_streams()
            time.sleep(2)
    finally:
        crowd.stop()
        stop_simulator(proc)
    report.save("live-capacity", results)


def compare_browser_polling(crowd: Crowd, meter: Meter, present, push: dict) -> dict:
    """The same agents without streams, each page polling /panel/workspace every second."""
    crowd.close_streams()
    deadline = time.monotonic() + 60
    while live.present_agents() and time.monotonic() < deadline:  # presence lapses
        time.sleep(0.5)
    csrf = uuid.uuid4().hex
    crowd.start_polling({a.pk: cookie for a, _c, cookie in present}, csrf, every=1.0)
    time.sleep(5)  # every page has polled a few times
    polls_before = crowd.polls
    before = meter.read()
    time.sleep(WINDOW)
    polled = Meter.delta(before, meter.read())
    page_requests = crowd.polls - polls_before
    crowd.stop_polling()
    size = len(present)
    ours = sum(polled["cpu"][k] for k in ("worker", "uvicorn", "beat", "redis"))
    browser_cost = 1000 * ours / size / polled["seconds"]
    push_cost = push["server_cpu_ms_per_agent_second"]
    push_requests = 0.0  # one stream per page, opened once
    served = page_requests / size / polled["seconds"]
    figures = {
        "window": polled,
        "page_requests": page_requests,
        "poll_errors": crowd.poll_errors,
        "server_cpu_ms_per_agent_second": round(browser_cost, 3),
        "push_server_cpu_ms_per_agent_second": push_cost,
        "cpu_ratio_push_to_browser": round(push_cost / browser_cost, 3),
        "panel_requests_per_agent_second": round(page_requests / size / polled["seconds"], 2),
        "push_panel_requests_per_agent_second": push_requests,
        "getcalls_per_agent_minute": round(60 * polled["getcalls"] / size / polled["seconds"], 1),
    }
    report.row(
        "3 push vs polling",
        f"{size} agents, 1 s",
        f"server CPU/agent: push {push_cost:.2f} vs browser polling {browser_cost:.2f} ms/s"
        f" = {push_cost / browser_cost:.2f}x; page requests/agent/s 0 vs {served:.2f}"
        + ("" if served > 0.9 else " (polling fell behind: not equal freshness)"),
        "<= 0.2x at equal freshness",
    )
    return figures


def test_poll_efficiency_by_state(live_stack):
    """MaxContact requests per present agent per minute in each state, against the naive 60."""
    groups = ("not ready", "ready", "on a call", "wrap-up")
    per_group = 5
    proc, sim = start_simulator("--crowd", str(per_group * len(groups)), "--quiet")
    crowd = Crowd(live_stack.url)
    try:
        members: dict[str, list] = {group: [] for group in groups}
        for index, (account, client, _cookie) in enumerate(
            make_agents(sim, per_group * len(groups))
        ):
            group = groups[index // per_group]
            members[group].append((account, client))
            if group != "not ready":
                client.post(reverse("go-ready"), {"key": uuid.uuid4().hex}, HTTP_HX_REQUEST="true")
            if group in ("on a call", "wrap-up"):
                call = sim.offer(account.remote_user_id)
                if group == "wrap-up":
                    sim.customer_hangup(call["CallId"])
        crowd.open_streams(
            {a.pk: c.cookies["sessionid"].value for ms in members.values() for a, c in ms}
        )
        time.sleep(8)  # every agent seen in her state, intervals settled
        before = sim.counts()["by_user"].get("getcalls", {})
        time.sleep(WINDOW * 2)
        after = sim.counts()["by_user"].get("getcalls", {})
        minutes = WINDOW * 2 / 60
        rates = {}
        for group, accounts in members.items():
            polls = sum(
                after.get(str(a.remote_user_id), 0) - before.get(str(a.remote_user_id), 0)
                for a, _c in accounts
            )
            rates[group] = round(polls / len(accounts) / minutes, 1)
            report.row(
                "6 poll efficiency",
                f"an agent {group}",
                f"{rates[group]:.1f} getcalls/minute",
                "< 60 (naive: 60)",
            )
        report.save("poll-efficiency", {"getcalls_per_agent_minute": rates, "window_s": WINDOW * 2})
    finally:
        crowd.stop()
        stop_simulator(proc)


def test_idle_stream_memory(live_stack):
    """RSS growth of a web process per open, idle SSE connection: a uvicorn of its own, warmed
    up by a few streams, then BENCH_STREAMS (1,000) more, one per agent."""
    count = int(os.environ.get("BENCH_STREAMS", "1000"))
    proc, sim = start_simulator("--crowd", str(count + 10), "--quiet")
    server = start_panel()
    crowd = Crowd(server.url)
    try:
        agents = make_agents(sim, count + 10)
        pid = server.process.pid
        crowd.open_streams({a.pk: cookie for a, _c, cookie in agents[count:]})  # warm-up
        time.sleep(3)
        before = rss_kib(pid), status(pid, "Threads")
        crowd.open_streams({a.pk: cookie for a, _c, cookie in agents[:count]})
        time.sleep(5)  # idle: every agent's first state sent, nothing changing
        after = rss_kib(pid), status(pid, "Threads")
        per = (after[0] - before[0]) / count
        report.row(
            "4 idle streams",
            f"{count} streams, one uvicorn",
            f"{per:.1f} KiB per connection (RSS {before[0] / 1024:.0f} -> "
            f"{after[0] / 1024:.0f} MiB; threads {before[1]} -> {after[1]})",
            "<= 64 KB",
        )
        report.save(
            "idle-streams",
            {"streams": count, "rss_kib": [before[0], after[0]], "threads": [before[1], after[1]],
             "kib_per_stream": round(per, 1)},
        )  # fmt: skip
    finally:
        crowd.stop()
        stop(server.process)
        stop_simulator(proc)
