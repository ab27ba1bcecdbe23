"""Presence, scheduling, locks, intervals and change detection, against a real Redis server."""

import json
import time

import pytest
from django.urls import reverse

from controlpanel import live, tasks
from telephony.desk import AgentState, Desk
from tests.servers import _forget_live_state

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_redis():
    # Only the panel's own keys: a FLUSHDB would also drop Celery's queue bindings in the
    # broker, and a live stack started by an earlier test would then lose every poll task.
    _forget_live_state()
    yield
    _forget_live_state()


def take_lock(account_id: int, token: str, seconds: float) -> bool:
    """Her poll lock, taken as a poller takes it (the first step of a batch)."""
    return bool(live.begin_polls({account_id: token}, seconds))


def test_an_agent_is_present_while_a_panel_is_open(alice):
    assert live.present_agents() == set()
    live.stream_opened(alice.pk, "tab-1")
    live.stream_opened(alice.pk, "tab-2")
    assert live.present_agents() == {alice.pk}
    live.stream_closed(alice.pk, "tab-1")
    assert live.present_agents() == {alice.pk}  # one tab is still open
    live.stream_closed(alice.pk, "tab-2")
    assert live.present_agents() == set()
    assert live.claim_due() == []


def test_presence_expires_when_streams_stop_refreshing(alice):
    now = time.time()
    live.stream_opened(alice.pk, "tab-1", now=now - live.STREAM_TTL - 1)
    assert live.present_agents() == set()
    assert live.claim_due() == []  # and the schedule forgets her
    assert live.client().zscore(live.DUE, str(alice.pk)) is None


def test_only_due_present_agents_are_claimed_and_pushed_one_interval_on(alice, bob):
    now = time.time()
    live.stream_opened(alice.pk, "a", now=now)
    live.stream_opened(bob.pk, "b", now=now)
    live.client().zadd(live.DUE, {str(bob.pk): now + 5}, xx=True)
    assert live.claim_due(now=now) == [alice.pk]
    assert live.claim_due(now=now) == []  # claimed: not due again this tick
    assert live.client().zscore(live.DUE, str(alice.pk)) == pytest.approx(
        now + live.FAST - live.SLACK
    )
    assert sorted(live.claim_due(now=now + 5)) == [alice.pk, bob.pk]


def test_the_dispatcher_fans_out_in_batches(alice, bob, settings, monkeypatch):
    settings.POLL_BATCH_SIZE = 1
    live.stream_opened(alice.pk, "a")
    live.stream_opened(bob.pk, "b")
    sent = []
    monkeypatch.setattr(
        tasks.poll_batch, "apply_async", lambda args, expires: sent.append((args, expires))
    )
    assert tasks.dispatch() == 2
    assert sorted(args[0][0] for args, _ in sent) == sorted([alice.pk, bob.pk])
    assert all(expires == settings.POLL_EXPIRES for _, expires in sent)


def test_a_poll_lock_is_exclusive_and_expires_by_itself(alice):
    assert take_lock(alice.pk, "worker-1", 0.3)
    assert not take_lock(alice.pk, "worker-2", 0.3)
    live.release(alice.pk, "worker-2")  # not the owner: no effect
    assert not take_lock(alice.pk, "worker-2", 0.3)
    time.sleep(0.35)  # a killed worker's lock
    assert take_lock(alice.pk, "worker-2", 0.3)


@pytest.mark.parametrize(
    ("state", "errors", "tenant_errors", "expected"),
    [
        (AgentState.ON_CALL, 0, 0, live.FAST),
        (AgentState.READY, 0, 0, live.FAST),
        (AgentState.WRAP_UP, 0, 0, live.WRAP_UP),
        (AgentState.NOT_READY, 0, 0, live.IDLE),
        (AgentState.ON_CALL, 1, 0, 2.0),
        (AgentState.ON_CALL, 3, 0, 8.0),
        (AgentState.ON_CALL, 10, 0, live.MAX_BACKOFF),
        (AgentState.ON_CALL, 0, 4, 4.0),
    ],
)
def test_the_interval_adapts(state, errors, tenant_errors, expected):
    assert live.interval_for(state, errors, tenant_errors) == expected


def _desk(account, state=AgentState.READY, error=None):
    return Desk(account, [], state, None, None, error)


def test_only_a_change_is_published(alice):
    pubsub = live.client().pubsub()
    pubsub.subscribe(live.channel(alice.pk))
    pubsub.get_message(timeout=1)
    renders = []

    def render(version):
        renders.append(version)
        return f"<p>v{version}</p>"

    first = live.publish(alice.pk, _desk(alice), render)
    same = live.publish(alice.pk, _desk(alice), render)
    other = live.publish(alice.pk, _desk(alice, AgentState.ON_CALL), render)
    assert (first.changed, same.changed, other.changed) == (True, False, True)
    assert renders == [first.version, other.version]
    assert same.version == first.version < other.version
    messages = [pubsub.get_message(timeout=1) for _ in range(2)]
    assert [json.loads(m["data"])["version"] for m in messages] == renders
    assert pubsub.get_message(timeout=0.2) is None
    assert live.snapshot(alice.pk) == {"version": other.version, "html": f"<p>v{other.version}</p>"}


def test_versions_keep_growing_when_redis_loses_everything(alice, redis_server):
    before = live.publish(alice.pk, _desk(alice), str).version
    redis_server.restart()  # no persistence: it comes back empty
    assert live.snapshot(alice.pk) is None
    after = live.publish(alice.pk, _desk(alice), str).version
    assert after > before


def test_errors_back_off_the_agent_and_the_tenant(alice, bob):
    from telephony.errors import Unreachable

    down = Unreachable("down", may_have_reached_server=False)
    for _ in range(3):
        live.record_poll(alice.pk, alice.tenant_id, _desk(alice, error=down))
    assert float(live.agent_info(alice.pk)["interval"]) == 8.0
    # Bob's own polls succeed? Not yet: the tenant is struggling, so he slows down too.
    interval = live.interval_for(AgentState.READY, 0, 3)
    assert interval == 2.0
    live.record_poll(alice.pk, alice.tenant_id, _desk(alice))
    assert float(live.agent_info(alice.pk)["interval"]) == live.FAST


def test_a_slow_poll_stretches_the_interval(alice):
    assert live.record_poll(alice.pk, alice.tenant_id, _desk(alice), took=3.0) == 6.0


def test_a_successful_poll_keeps_the_claims_cadence_and_a_failing_one_pushes_it_back(alice):
    """A poll that waited for its batch must not miss the next tick: only failures and
    slowness move her next poll later than the claim put it."""
    from telephony.errors import Unreachable

    live.stream_opened(alice.pk, "tab")
    live.client().zadd(live.DUE, {str(alice.pk): time.time() - 5})
    # Claimed 0.6 s ago (her poll waited for its batch): next due in 0.3 s.
    assert live.claim_due(now=time.time() - 0.6) == [alice.pk]
    claimed = live.client().zscore(live.DUE, str(alice.pk))
    live.record_poll(alice.pk, alice.tenant_id, _desk(alice), took=0.05)
    live.end_quiet_polls([live.QuietPoll(alice.pk, alice.tenant_id, AgentState.READY, 0.05, "t")])
    assert live.client().zscore(live.DUE, str(alice.pk)) == claimed
    down = Unreachable("down", may_have_reached_server=False)
    live.record_poll(alice.pk, alice.tenant_id, _desk(alice, error=down))
    assert (live.client().zscore(live.DUE, str(alice.pk)) or 0) > (claimed or 0)  # later


def test_an_action_after_a_poll_started_makes_that_poll_stale(alice):
    started = time.time()
    assert not live.acted_since(alice.pk, started)
    live.publish(alice.pk, _desk(alice), str, acted=True)  # a view's response
    assert live.acted_since(alice.pk, started)


def test_refresh_agent_reads_renders_and_publishes_once(alice, simulator):
    live.stream_opened(alice.pk, "tab")
    assert tasks.refresh_agent(alice.pk) is True
    snapshot = live.snapshot(alice.pk)
    assert snapshot is not None
    assert 'class="workspace-inner"' in snapshot["html"]
    assert "No calls." in snapshot["html"]
    assert tasks.refresh_agent(alice.pk) is False  # nothing changed
    simulator.set_agent_state(101, "ready")
    simulator.offer(101)
    assert tasks.refresh_agent(alice.pk) is True
    assert "call-1000" in (live.snapshot(alice.pk) or {})["html"]


def test_refresh_agent_skips_an_agent_being_polled(alice):
    assert take_lock(alice.pk, "someone-else", 5)
    assert tasks.refresh_agent(alice.pk) is False


def test_a_held_lock_is_renewed_while_the_poll_runs(alice):
    assert take_lock(alice.pk, "worker-1", 0.3)
    with live.renewed(alice.pk, "worker-1", 0.3):
        time.sleep(0.7)  # longer than the lock's own lifetime
        assert not take_lock(alice.pk, "worker-2", 0.3)
    time.sleep(0.35)  # renewal stopped with the block: it expires by itself
    assert take_lock(alice.pk, "worker-2", 0.3)


def test_a_lost_snapshot_is_published_again_even_without_a_change(alice):
    first = live.publish(alice.pk, _desk(alice), str)
    live.client().delete(f"{live.PREFIX}snapshot:{alice.pk}")
    again = live.publish(alice.pk, _desk(alice), str)
    assert again.changed
    assert again.version > first.version
    assert live.snapshot(alice.pk) is not None


def test_a_live_render_keeps_the_notice_of_the_last_click(alice_client, alice, simulator):
    """The poller has nothing to say about a click: its fragment keeps the notice on the page."""
    clicked = alice_client.post(
        reverse("go-ready"), {"key": "k-ready-1"}, headers={"HX-Request": "true"}
    )
    assert '<div id="notice">' in clicked.content.decode()  # an action replaces the notice
    assert "You are ready for calls." in clicked.content.decode()
    snapshot = live.snapshot(alice.pk)
    assert snapshot is not None
    html = snapshot["html"]
    assert '<div id="notice" hx-preserve></div>' in html
    assert "You are ready for calls." not in html


def test_an_unchanged_poll_touches_neither_database_nor_template(
    alice, simulator, django_assert_num_queries
):
    live.stream_opened(alice.pk, "tab")
    assert tasks.refresh_agent(alice.pk) is True  # the first poll reads everything
    before = float(live.agent_info(alice.pk)["read_at"])
    with django_assert_num_queries(0):
        assert tasks.refresh_agent(alice.pk) is False
    info = live.agent_info(alice.pk)
    assert float(info["read_at"]) > before  # recorded as a fresh, successful read
    assert info["errors"] == "0"
    assert take_lock(alice.pk, "next-poll", 1)  # its lock was released


def test_an_action_or_a_change_makes_the_next_poll_a_full_one(alice, simulator):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    live.stream_opened(alice.pk, "tab")
    tasks.refresh_agent(alice.pk)
    live.publish(alice.pk, _desk(alice), str, acted=True)  # an action answered by a view
    with CaptureQueriesContext(connection) as queries:
        tasks.refresh_agent(alice.pk)
    assert len(queries) > 0
    simulator.set_agent_state(101, "ready")
    simulator.offer(101)  # MaxContact's answer changes: published at once
    assert tasks.refresh_agent(alice.pk) is True
    assert "call-1000" in (live.snapshot(alice.pk) or {})["html"]


@pytest.mark.django_db(transaction=True)
def test_an_admins_edit_starts_a_new_configuration_epoch(alice, simulator):
    tasks.refresh_agent(alice.pk)
    epoch = live.client().get(live.CONFIG)
    assert epoch
    alice.tenant.call_state_labels = {"1": "Talking to a customer"}
    alice.tenant.save()
    assert live.client().get(live.CONFIG) not in (None, epoch)  # pollers reload her account
    known = tasks._known[alice.pk]
    tasks.refresh_agent(alice.pk)
    assert tasks._known[alice.pk] is not known
    assert tasks._known[alice.pk].account.tenant.call_state_labels == {"1": "Talking to a customer"}


@pytest.mark.parametrize(
    "notice",
    [
        None,
        ("success", "Call on hold.", ""),
        ("error", 'MaxContact refused: "<b>no</b>" & more', "detail <i>here</i>"),
    ],
)
def test_a_clicks_workspace_made_from_the_published_one_is_the_direct_render(
    alice, simulator, notice
):
    """A click publishes its workspace for her other tabs, then answers with that HTML plus
    its notice instead of rendering twice: it must be exactly what a direct render gives."""
    import re

    from django.template.loader import render_to_string

    from controlpanel import workspace
    from telephony.desk import read_desk

    simulator.set_agent_state(101, "ready")
    simulator.offer(101, phone="07700900123")
    desk = read_desk(alice)
    context = workspace.context(alice, desk, notice=workspace.Notice(*notice) if notice else None)
    context["version"] = 42
    published = workspace.render(alice, desk, version=42, shared=context)
    made = workspace.response_from_live(published, context)
    direct = render_to_string(f"{workspace.PAGE}#workspace", context)

    def same_second(html: str) -> str:
        """Without what differs between any two renders: the second, and the fresh keys
        that action forms get each time they are drawn."""
        html = re.sub(r'data-rendered="[^"]*"', "", html)
        return re.sub(r'value="[0-9a-f]{32}"', 'value="key"', html)

    assert same_second(made) == same_second(direct)
    if notice:
        assert '<div id="notice" hx-preserve></div>' in published
        assert notice[1] not in published


def test_a_desk_written_elsewhere_makes_the_next_poll_a_full_one(alice, simulator):
    """Another writer (a page load here; in production also another worker process) saw a
    call this process never saw. When MaxContact's answer is back to what this process last
    saw, the poll must still do the full read: her call has ended and must leave the panel."""
    from controlpanel import views
    from telephony.desk import read_desk

    live.stream_opened(alice.pk, "tab")
    simulator.set_agent_state(101, "ready")
    tasks.refresh_agent(alice.pk)  # this process: no calls
    call = simulator.offer(101)
    views.publish_page_state(alice, read_desk(alice))  # a page load shows the call
    assert f"call-{call['CallId']}" in (live.snapshot(alice.pk) or {})["html"]
    simulator.customer_hangup(call["CallId"])
    alice.client().dispose(call_id=call["CallId"], result_code="SALE")  # from her phone
    assert tasks.refresh_agent(alice.pk) is True  # not "the same as last time"
    assert f"call-{call['CallId']}" not in (live.snapshot(alice.pk) or {})["html"]


def test_a_click_forgets_her_errors_and_polls_her_one_interval_later(
    alice_client, alice, simulator
):
    live.stream_opened(alice.pk, "tab")
    live.client().hset(f"{live.PREFIX}agent:{alice.pk}", "errors", 3)
    live.client().zadd(live.DUE, {str(alice.pk): time.time() + 30}, xx=True)  # backed off
    before = time.time()
    alice_client.post(reverse("go-ready"), {"key": "k-ready-9"}, headers={"HX-Request": "true"})
    after = time.time()
    info = live.agent_info(alice.pk)
    assert info["errors"] == "0"
    assert before <= float(info["action_at"]) <= after
    due = live.client().zscore(live.DUE, str(alice.pk))
    assert before + live.FAST - live.SLACK <= (due or 0) <= after + live.FAST - live.SLACK


def test_a_batch_begins_with_locks_last_actions_versions_and_the_epoch(alice, bob):
    r = live.client()
    r.delete(live.CONFIG)
    r.hset(f"{live.PREFIX}agent:{alice.pk}", mapping={"action_at": 123.5, "version": 42})
    assert take_lock(bob.pk, "another-poll", 5)
    begun = live.begin_polls({alice.pk: "mine", bob.pk: "mine-too"}, 5)
    assert list(begun) == [alice.pk]  # Bob is being polled elsewhere: left out
    assert (begun[alice.pk].action_at, begun[alice.pk].version) == (123.5, 42)
    assert begun[alice.pk].config == r.get(live.CONFIG)  # none was there: a new epoch
    assert r.get(f"{live.PREFIX}lock:{alice.pk}") == "mine"
    assert r.get(f"{live.PREFIX}lock:{bob.pk}") == "another-poll"
    assert live.begin_polls({alice.pk: "again"}, 5) == {}  # her lock is held now


def test_a_batchs_quiet_polls_are_recorded_and_unlocked_in_one_go(alice, bob):
    r = live.client()
    now = time.time()
    for account in (alice, bob):
        live.stream_opened(account.pk, "tab")
        r.set(f"{live.PREFIX}snapshot:{account.pk}", "{}", ex=5)
        r.hset(f"{live.PREFIX}agent:{account.pk}", "errors", 2)
    r.zadd(live.DUE, {str(alice.pk): now, str(bob.pk): now}, xx=True)
    r.set(f"{live.PREFIX}tenant:{alice.tenant_id}:errors", 3)
    live.begin_polls({alice.pk: "a-token", bob.pk: "b-token"}, 5)
    r.set(f"{live.PREFIX}lock:{bob.pk}", "taken-over")  # her lock expired and was taken
    live.end_quiet_polls(
        [
            live.QuietPoll(alice.pk, alice.tenant_id, AgentState.READY, 0.05, "a-token"),
            live.QuietPoll(bob.pk, bob.tenant_id, AgentState.READY, 0.8, "b-token"),  # slow
        ]
    )
    alice_info, bob_info = live.agent_info(alice.pk), live.agent_info(bob.pk)
    assert (alice_info["errors"], float(alice_info["interval"])) == ("0", live.FAST)
    assert float(bob_info["interval"]) == pytest.approx(1.6)  # twice what it took
    assert float(alice_info["read_at"]) >= now
    assert r.zscore(live.DUE, str(alice.pk)) == pytest.approx(now)  # the claim's cadence
    assert (r.zscore(live.DUE, str(bob.pk)) or 0) >= now + 1.6 - 5 * live.SLACK  # pushed back
    assert r.get(f"{live.PREFIX}lock:{alice.pk}") is None  # released
    assert r.get(f"{live.PREFIX}lock:{bob.pk}") == "taken-over"  # not hers any more: kept
    assert r.ttl(f"{live.PREFIX}snapshot:{alice.pk}") > 5  # kept alive
    assert r.ttl(f"{live.PREFIX}agent:{bob.pk}") > 5
    assert r.get(f"{live.PREFIX}tenant:{alice.tenant_id}:errors") is None
