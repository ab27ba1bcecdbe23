"""Live updates end to end: a real Celery worker and beat, the real Redis broker, the
simulator, and uvicorn serving the SSE stream. The agent goes ready; after that nothing
is clicked."""

import os
import signal
import time
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from tests.servers import start_celery, start_panel, stop
from tests.sse import SSEClient

pytestmark = pytest.mark.django_db(transaction=True)


def cookies_for(account):
    client = Client()
    client.force_login(account.user)
    return {"sessionid": client.cookies["sessionid"].value}


def go_ready(account):
    """The agent presses Ready in her panel (which also tells the poller to hurry)."""
    client = Client()
    client.force_login(account.user)
    response = client.post(reverse("go-ready"), {"key": uuid.uuid4().hex}, HTTP_HX_REQUEST="true")
    assert "You are ready for calls." in response.content.decode()


def getcalls(simulator, user_id):
    return [r for r in simulator.requests() if f"/getcalls/user/{user_id}" in r["path"].lower()]


@pytest.fixture
def open_stream(live_stack):
    streams = []

    def open_(account, **kwargs):
        stream = SSEClient(f"{live_stack.url}/panel/stream", cookies_for(account), **kwargs)
        streams.append(stream)
        return stream

    yield open_
    for stream in streams:
        stream.close()


def test_the_snapshot_comes_first_with_a_version(open_stream, alice):
    stream = open_stream(alice)
    first = stream.next()
    assert 'class="workspace-inner"' in first.text
    assert "No calls." in first.text
    assert first.id.isdigit()


def test_an_offered_call_and_a_customer_hang_up_arrive_without_a_click(
    open_stream, alice, simulator
):
    stream = open_stream(alice)
    stream.next()
    go_ready(alice)
    simulator.offer(101, phone="07700900456")
    arrived = stream.wait_for("call-1000", timeout=10)
    assert "07700 900456" in arrived.text
    simulator.customer_hangup(1000)
    wrapped = stream.wait_for("needs a result", timeout=10)
    assert int(wrapped.id) > int(arrived.id)


def test_an_unchanged_state_publishes_nothing(open_stream, alice, simulator):
    stream = open_stream(alice)
    stream.next()
    polls_before = len(getcalls(simulator, 101))
    assert stream.nothing_for(3.5)
    assert len(getcalls(simulator, 101)) > polls_before  # she was polled all the while


def test_only_present_agents_are_polled_and_closing_stops_it(open_stream, alice, bob, simulator):
    stream = open_stream(alice)
    stream.next()
    time.sleep(3)
    assert getcalls(simulator, 102) == []  # Bob has no panel open: never polled
    alice_polls = len(getcalls(simulator, 101))
    assert 1 <= alice_polls <= 3 * 5 + 2  # about one a tick at most (idle agents: slower)
    stream.close()
    time.sleep(1.5)  # the stream's end is noticed and polling stops
    settled = len(getcalls(simulator, 101))
    time.sleep(3)
    assert len(getcalls(simulator, 101)) == settled


def test_a_reconnecting_panel_gets_the_current_state_first(open_stream, alice, simulator):
    stream = open_stream(alice)
    first = stream.next()
    stream.close()
    go_ready(alice)
    simulator.offer(101)
    time.sleep(3)  # the call arrives while no panel is open (and so is not even polled)
    again = open_stream(alice, last_event_id=first.id)
    snapshot = again.next()
    assert "call-1000" in snapshot.text


def test_two_web_processes_both_get_a_workers_fragment(live_stack, open_stream, alice, simulator):
    second = start_panel()
    try:
        one = open_stream(alice)
        two = SSEClient(f"{second.url}/panel/stream", cookies_for(alice))
        one.next()
        two.next()
        go_ready(alice)
        simulator.offer(101)
        assert "call-1000" in one.wait_for("call-1000").text
        assert "call-1000" in two.wait_for("call-1000").text
        two.close()
    finally:
        stop(second.process)


def test_redis_restarting_mid_stream_recovers(open_stream, alice, simulator, redis_server):
    stream = open_stream(alice)
    stream.next()
    redis_server.restart(down_for=1.0)
    go_ready(alice)
    simulator.offer(101)
    # Worker, beat and the web process's subscriber all reconnect; the call gets through.
    assert "call-1000" in stream.wait_for("call-1000", timeout=30).text


def test_a_worker_killed_mid_batch_does_not_stop_polling(live_stack, open_stream, alice, simulator):
    stream = open_stream(alice)
    stream.next()
    os.kill(live_stack.worker.pid, signal.SIGKILL)
    live_stack.worker.wait()
    replacement = start_celery("worker")
    try:
        go_ready(alice)
        simulator.offer(101)
        assert "call-1000" in stream.wait_for("call-1000", timeout=20).text
    finally:
        stop(replacement)


def test_maxcontact_failing_for_one_agent_slows_only_her(open_stream, alice, bob, simulator):
    alice_stream, bob_stream = open_stream(alice), open_stream(bob)
    alice_stream.next()
    bob_stream.next()
    simulator.fault("status", status=500, count=1000, path_contains="getcalls/user/101")
    time.sleep(6)
    alice_polls, bob_polls = len(getcalls(simulator, 101)), len(getcalls(simulator, 102))
    # Each of Alice's polls is three tries (reads are retried), backing off 2, 4, 8 s...
    assert alice_polls < bob_polls * 3
    go_ready(bob)
    simulator.offer(102)
    assert "call-1000" in bob_stream.wait_for("call-1000", timeout=10).text
    banner = alice_stream.wait_for("MaxContact cannot be read right now", timeout=10)
    assert "server error (HTTP 500)" in banner.text


def test_a_second_beat_started_by_mistake_does_not_double_the_polling(
    live_stack, open_stream, alice, simulator, tmp_path
):
    stream = open_stream(alice)
    stream.next()
    go_ready(alice)  # polled every second from now on
    time.sleep(2)

    def polls_in(seconds):
        before = len(getcalls(simulator, 101))
        time.sleep(seconds)
        return len(getcalls(simulator, 101)) - before

    one_beat = polls_in(6)
    second = start_celery("beat", workdir=tmp_path)
    try:
        time.sleep(3)  # the second beat starts ticking
        two_beats = polls_in(6)
    finally:
        stop(second)
    # Each dispatcher takes due agents atomically: a second one finds none left to take.
    assert 3 <= one_beat <= 8
    assert two_beats <= one_beat + 2, (one_beat, two_beats)


@pytest.mark.django_db
def test_a_stream_keeps_her_id_for_the_log_and_not_her_user_account_and_tenant(alice):
    """A stream's request lives for hours; what was read to let it in need not."""
    from django.contrib.auth import get_user
    from django.test import RequestFactory

    from controlpanel import stream

    client = Client()
    client.force_login(alice.user)
    request = RequestFactory().get(reverse("stream"))
    request.session = client.session
    request.user = get_user(request)
    assert stream._account_of(request) == alice.pk
    stream._forget_user(request)
    assert not request.user.is_authenticated
    assert request.logged_user_id == alice.user.pk  # type: ignore[attr-defined]
    alice.is_active = False
    alice.save()
    request.user = get_user(request)
    assert stream._account_of(request) is None  # refused (403)
