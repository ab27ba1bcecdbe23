"""Benchmark (`make bench`, not `make test`): how long an offered call takes to reach a panel.

Measured end to end through the real parts: the simulator offers a call, beat's dispatcher
picks the agent, a Celery worker polls getcalls, publishes through Redis, and uvicorn streams
the fragment to an SSE client. Reported, never asserted (the machine is shared and noisy).
"""

import random
import statistics
import time
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from tests.sse import SSEClient

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]
TRIALS = 15


def test_offered_call_to_open_panel_latency(live_stack, simulator, alice):
    client = Client()
    client.force_login(alice.user)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    stream = SSEClient(f"{live_stack.url}/panel/stream", cookies)
    stream.next()
    samples = []
    try:
        for _ in range(TRIALS):
            client.post(reverse("go-ready"), {"key": uuid.uuid4().hex}, HTTP_HX_REQUEST="true")
            time.sleep(1.3 + random.random())  # settle, then offer at a random phase of the tick
            started = time.monotonic()
            call = simulator.offer(101)
            stream.wait_for(f"call-{call['CallId']}", timeout=15)
            samples.append(time.monotonic() - started)
            simulator.customer_hangup(call["CallId"])
            stream.wait_for("needs a result", timeout=15)
            client.post(
                reverse("dispose", args=[call["CallId"]]),
                {
                    f"c{call['CallId']}-key": uuid.uuid4().hex,
                    f"c{call['CallId']}-result_code": "NOSALE",
                },
                HTTP_HX_REQUEST="true",
            )
    finally:
        stream.close()
    samples.sort()
    median, p90 = statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]
    print(
        f"\noffered call -> open panel, {TRIALS} trials: median {median:.2f} s, "
        f"p90 {p90:.2f} s, max {samples[-1]:.2f} s (poll tick 1 s)"
    )
