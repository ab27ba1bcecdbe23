"""The agent panel's views: every control, what the agent sees, and what never happens."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from telephony.models import AuditEntry, TrackedCall
from telephony.simulator.world import SEED_AGENTS

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
ALICE = SEED_AGENTS[0]


def key():
    import uuid

    return uuid.uuid4().hex


def post(client, name, *args, **data):
    data.setdefault("key", key())
    return client.post(reverse(name, args=args), data, **HTMX)


def act(client, call_id, method, **data):
    return post(client, "call-action", call_id, method, **data)


def text(response):
    """The response as the words a person reads (tags removed, spaces squeezed)."""
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def sent(simulator, method):
    return [r for r in simulator.requests() if f"/telephony/{method}/" in r["path"].lower()]


@pytest.fixture
def on_a_call(alice_client, simulator):
    post(alice_client, "go-ready")
    post(alice_client, "dial", phone="07700 900123")
    return 1000


def test_the_panel_shows_the_agent_her_state(alice_client, alice):
    response = alice_client.get(reverse("panel"))
    assert response.status_code == 200
    words = text(response)
    assert "Alice Archer" in words
    assert "Simulated tenant" in words
    assert "Not ready" in words
    assert "No calls." in words
    assert "MaxContact read" in words
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-eval" not in policy
    assert "unsafe-inline" not in policy
    assert response["X-Frame-Options"] == "DENY"
    html = response.content.decode()
    assert ALICE.password not in html
    assert "TokenKey" not in html


def test_logged_out_visitors_are_sent_to_log_in(client):
    response = client.get(reverse("panel"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_logged_out_htmx_action_redirects_the_page_instead_of_swapping(client, alice):
    response = client.post(reverse("go-ready"), {"key": key()}, **HTMX)
    assert response["HX-Redirect"].startswith(reverse("login"))
    assert response.content == b""


def test_an_action_without_a_csrf_token_is_refused_and_not_sent(alice, simulator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice.user)
    response = client.post(reverse("go-ready"), {"key": key()}, **HTMX)
    assert response.status_code == 403
    assert "Nothing was sent to MaxContact" in text(response)
    assert sent(simulator, "goready") == []


def test_a_user_without_an_agent_account_is_told_so(client, django_user_model):
    user = django_user_model.objects.create_user("visitor")
    client.force_login(user)
    response = client.get(reverse("panel"))
    assert response.status_code == 403
    assert "No MaxContact account yet" in text(response)


def test_go_ready(alice_client, simulator):
    response = post(alice_client, "go-ready")
    words = text(response)
    assert "You are ready for calls." in words
    assert "Ready" in words
    assert len(sent(simulator, "goready")) == 1


def test_dial_shows_the_new_call_and_clears_the_number(alice_client, simulator):
    post(alice_client, "go-ready")
    response = post(alice_client, "dial", phone="07700 900123")
    words = text(response)
    assert "Dialling 07700900123." in words
    assert "07700 900123" in words  # formatted for people
    assert 'title="07700900123"' in response.content.decode()  # raw on hover
    assert "Connected" in words
    assert "Hang up" in words
    assert '<hx-partial hx-target="#dial"' in response.content.decode()
    assert 'name="phone"' in response.content.decode()
    (request,) = sent(simulator, "dial")
    assert request["path"].endswith("/phone/07700900123")


def test_dial_sends_the_tenants_format_and_the_lead_id(alice_client, simulator, sim_tenant):
    sim_tenant.dial_format = "e164"
    sim_tenant.save()
    post(alice_client, "go-ready")
    post(alice_client, "dial", phone="07700 900456", lead_id="4000456")
    (request,) = sent(simulator, "dial")
    assert request["path"].endswith("/phone/%2B447700900456")
    assert request["params"] == {"leadid": ["4000456"]}


@pytest.mark.parametrize(
    ("typed", "message"),
    [("abc", "is not a phone number"), ("123", "wrong number of digits"), ("", "Enter a phone")],
)
def test_a_wrong_number_is_explained_and_kept_and_nothing_is_sent(
    alice_client, simulator, typed, message
):
    response = post(alice_client, "dial", phone=typed)
    assert response["HX-Retarget"] == "#dial"
    assert message in text(response)
    assert f'value="{typed}"' in response.content.decode()
    assert sent(simulator, "dial") == []


def test_hold_and_retrieve(alice_client, on_a_call):
    held = act(alice_client, on_a_call, "hold")
    assert "Call on hold." in text(held)
    assert "Take off hold" in text(held)
    assert TrackedCall.objects.current().get(call_id=on_a_call).held
    retrieved = act(alice_client, on_a_call, "retrieve")
    assert "Call taken off hold." in text(retrieved)
    assert "Hold O" in text(retrieved)


def test_pausing_the_recording_shows_the_pci_indicator_until_resumed(alice_client, on_a_call):
    paused = act(alice_client, on_a_call, "stoprecord")
    assert "Recording paused (PCI)" in text(paused)
    assert "is-pci" in paused.content.decode()
    assert "Resume recording" in text(paused)
    # It stays on every later rendering, not only in the response to the click.
    assert "Recording paused (PCI)" in text(alice_client.get(reverse("panel")))
    resumed = act(alice_client, on_a_call, "startrecord")
    assert "Recording resumed." in text(resumed)
    assert "is-pci" not in resumed.content.decode()


def test_hang_up_then_dispose(alice_client, on_a_call, simulator):
    ended = act(alice_client, on_a_call, "hangup")
    words = text(ended)
    assert "Call ended." in words
    assert "One call needs a result." in words
    assert "Finish call" in words
    assert "HKT" not in words  # not agent-viewable
    disposed = post(
        alice_client,
        "dispose",
        on_a_call,
        **{"c1000-key": key(), "c1000-result_code": "SALE", "c1000-notes": "paid by card"},
    )
    assert "Call finished as" in text(disposed)
    assert "No calls." in text(disposed)
    entry = AuditEntry.objects.get(method="dispose")
    assert entry.parameters["notes"] == "paid by card"
    assert entry.outcome == "ok"


def test_a_disposition_without_a_result_keeps_the_notes(alice_client, on_a_call, simulator):
    act(alice_client, on_a_call, "hangup")
    response = post(
        alice_client,
        "dispose",
        on_a_call,
        **{"c1000-key": key(), "c1000-result_code": "", "c1000-notes": "call back Tuesday"},
    )
    assert "Choose a result" in text(response)
    assert "call back Tuesday" in response.content.decode()
    assert sent(simulator, "dispose") == []


def test_a_system_result_code_is_refused_before_maxcontact(alice_client, on_a_call, simulator):
    act(alice_client, on_a_call, "hangup")
    response = post(
        alice_client,
        "dispose",
        on_a_call,
        **{"c1000-key": key(), "c1000-result_code": "HKT", "c1000-notes": "x"},
    )
    assert "Select a valid choice" in text(response)
    assert sent(simulator, "dispose") == []


def test_a_rejection_shows_maxcontacts_words(alice_client, on_a_call):
    response = act(alice_client, on_a_call, "retrieve")  # not on hold
    assert "MaxContact refused: Call 1000 is not on hold" in text(response)
    assert AuditEntry.objects.get(method="retrieve").outcome == "rejected"


def test_a_dispose_that_times_out_keeps_everything_and_says_what_to_do(
    alice_client, on_a_call, simulator, sim_tenant
):
    sim_tenant.read_timeout = 0.5
    sim_tenant.save()
    act(alice_client, on_a_call, "hangup")
    simulator.fault("latency", delay=1.5, path_contains="dispose", apply=False)
    response = post(
        alice_client,
        "dispose",
        on_a_call,
        **{"c1000-key": key(), "c1000-result_code": "SALE", "c1000-notes": "keep me"},
    )
    words = text(response)
    assert "did not answer within 0.5 s" in words
    assert "not sent twice" in words
    assert "keep me" in response.content.decode()
    assert len(sent(simulator, "dispose")) == 1
    assert AuditEntry.objects.get(method="dispose").outcome == "uncertain"


@pytest.mark.parametrize("kind", ["garbage", "xml_bomb"])
def test_a_malformed_answer_is_a_clear_message(alice_client, on_a_call, simulator, kind):
    simulator.fault(kind, path_contains="/hold/")
    response = act(alice_client, on_a_call, "hold")
    assert "check your calls before trying again" in text(response)
    assert "Traceback" not in text(response)


def test_maxcontact_down_still_draws_the_panel_with_a_banner(alice_client, on_a_call, simulator):
    simulator.fault("status", status=503, count=10, path_contains="getcalls")
    response = alice_client.get(reverse("panel"))
    assert response.status_code == 200
    words = text(response)
    assert "MaxContact cannot be read right now." in words
    assert "MaxContact not answering" in words
    assert "07700 900123" in words  # the last known call is still shown


def test_the_same_form_sent_twice_dials_once(alice_client, simulator):
    post(alice_client, "go-ready")
    same = key()
    first = post(alice_client, "dial", phone="07700 900123", key=same)
    second = post(alice_client, "dial", phone="07700 900123", key=same)
    assert "Dialling" in text(first)
    assert "already sent once" in text(second)
    assert len(sent(simulator, "dial")) == 1
    assert AuditEntry.objects.filter(method="dial").count() == 1


def test_an_agent_cannot_hang_up_another_agents_call(alice_client, bob, simulator):
    bobs = bob.client()
    bobs.go_ready()
    bobs_call = bobs.dial(phone="07700900456").call.call_id
    simulator.clear_requests()
    response = act(alice_client, bobs_call, "hangup")
    assert f"Call {bobs_call} is not one of your calls" in text(response)
    assert sent(simulator, "hangup") == []
    assert [c.call_id for c in bobs.get_calls()] == [bobs_call]
    refused = AuditEntry.objects.get(outcome="refused")
    assert refused.account.user.username == "alice"


def test_no_url_or_form_names_a_maxcontact_user_id(alice_client, on_a_call):
    html = alice_client.get(reverse("panel")).content.decode()
    assert "/user/" not in html
    assert 'name="user' not in html
    assert f'value="{ALICE.user_id}"' not in html


def test_every_action_is_audited_without_secrets(alice_client, on_a_call, alice):
    act(alice_client, on_a_call, "hold")
    act(alice_client, on_a_call, "hangup")
    entries = list(AuditEntry.objects.order_by("id"))
    assert [e.method for e in entries] == ["goready", "dial", "hold", "hangup"]
    assert all(e.outcome == "ok" and e.latency_ms is not None for e in entries)
    assert all(e.user == alice.user and e.remote_user_id == ALICE.user_id for e in entries)
    alice.refresh_from_db()
    token = alice.client().token_store.load().key
    dumped = repr([(e.parameters, e.response_detail) for e in entries])
    assert ALICE.password not in dumped
    assert token not in dumped


def test_warm_transfer_in_two_steps(alice_client, on_a_call, simulator):
    started = post(alice_client, "transfer-start", on_a_call, phone="0161 496 0000")
    words = text(started)
    assert "The customer is on hold and 01614960000 is being dialled" in words
    assert "Step 2 of 2: connect the calls" in words
    assert len(sent(simulator, "hold")) == 1
    assert len(sent(simulator, "dial")) == 2
    done = post(
        alice_client,
        "transfer-complete",
        call1="1000",
        call2="1001",
        result_code1="TRANSFER",
        result_code2="BRIDGE_WARM",
        notes1="to billing",
        notes2="",
        num_sales1="",
        num_sales2="0",
    )
    assert "The two calls are connected" in text(done)
    assert "No calls." in text(done)
    (connect,) = sent(simulator, "connectcalls")
    assert connect["params"]["notes1"] == ["to billing"]
    assert "notes2" not in connect["params"]


def test_a_transfer_of_a_call_to_itself_is_refused(alice_client, on_a_call, simulator):
    post(alice_client, "transfer-start", on_a_call, phone="0161 496 0000")
    response = post(
        alice_client,
        "transfer-complete",
        call1="1000",
        call2="1000",
        result_code1="TRANSFER",
        result_code2="SALE",
    )
    assert "Choose two different calls." in text(response)
    assert sent(simulator, "connectcalls") == []


def test_lead_phones_and_moving_the_call(alice_client, on_a_call, simulator):
    panel = alice_client.get(reverse("lead-panel", args=[on_a_call]), **HTMX)
    words = text(panel)
    assert "Phones of lead 4000123" in words
    assert "07700 900123" in words
    ids = re.findall(r'name="lead_phone_id" value="(\d+)"', panel.content.decode())
    assert ids
    moved = post(alice_client, "change-lead", on_a_call, lead_phone_id=ids[-1])
    assert "Call moved to that lead." in text(moved)
    created = post(alice_client, "new-lead", on_a_call, phone="07700 900999")
    assert "New lead created for 07700900999" in text(created)
    (request,) = sent(simulator, "createnewlead")
    assert request["path"].endswith("/phone/07700900999")


def test_lead_phones_without_ids_say_why_the_call_cannot_move(alice_client, on_a_call, simulator):
    simulator.config(lead_phone_id_field=None)
    words = text(alice_client.get(reverse("lead-panel", args=[on_a_call]), **HTMX))
    assert "did not send an id" in words
    assert "Move call here" not in words


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("campaigns", "Home Energy Renewals"),
        ("queues", "Billing"),
        ("users", "Bob Baker"),
        ("resultcodes", "BRIDGE_WARM"),
    ],
)
def test_directory_panels(alice_client, kind, expected):
    response = alice_client.get(reverse("directory", args=[kind]), **HTMX)
    assert expected in text(response)


def test_users_are_searchable(alice_client):
    words = text(alice_client.get(reverse("directory", args=["users"]), {"q": "carol"}, **HTMX))
    assert "Carol Clark" in words
    assert "Bob Baker" not in words


def test_without_javascript_the_forms_still_work(alice, simulator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice.user)
    page = client.get(reverse("panel")).content.decode()
    ready_form = page[page.index('action="/panel/ready"') :]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', ready_form).group(1)
    form_key = re.search(r'name="key" value="([^"]+)"', ready_form).group(1)
    response = client.post(reverse("go-ready"), {"csrfmiddlewaretoken": token, "key": form_key})
    assert response.status_code == 200
    assert "<html" in response.content.decode()
    assert "You are ready for calls." in text(response)


# --- Every action, every way MaxContact can fail it -------------------------------------------

FAILURES = {
    "rejected": (
        {"kind": "reject", "detail": "Agent is not logged in to a campaign"},
        "MaxContact refused: Agent is not logged in to a campaign",
    ),
    "timeout": ({"kind": "latency", "delay": 1.5, "apply": False}, "did not answer within"),
    "malformed": (
        {"kind": "garbage", "apply": False},
        "MaxContact answered with something that is neither XML nor JSON",
    ),
}


def _ready_on_a_call(client):
    post(client, "go-ready")
    post(client, "dial", phone="07700 900123")


def _wrapped_up(client):
    _ready_on_a_call(client)
    act(client, 1000, "hangup")


def _two_calls(client):
    _ready_on_a_call(client)
    post(client, "transfer-start", 1000, phone="0161 496 0000")


ACTIONS = {
    # name: (set-up, path fragment, request, typed value that must survive a failure)
    "goready": (lambda c: None, "/goready/", lambda c: post(c, "go-ready"), None),
    "dial": (
        lambda c: post(c, "go-ready"),
        "/dial/",
        lambda c: post(c, "dial", phone="07700 900456"),
        'value="07700 900456"',
    ),
    "hangup": (_ready_on_a_call, "/hangup/", lambda c: act(c, 1000, "hangup"), None),
    "hold": (_ready_on_a_call, "/hold/", lambda c: act(c, 1000, "hold"), None),
    "retrieve": (
        lambda c: (_ready_on_a_call(c), act(c, 1000, "hold")),
        "/retrieve/",
        lambda c: act(c, 1000, "retrieve"),
        None,
    ),
    "stoprecord": (_ready_on_a_call, "/stoprecord/", lambda c: act(c, 1000, "stoprecord"), None),
    "startrecord": (
        lambda c: (_ready_on_a_call(c), act(c, 1000, "stoprecord")),
        "/startrecord/",
        lambda c: act(c, 1000, "startrecord"),
        None,
    ),
    "dispose": (
        _wrapped_up,
        "/dispose/",
        lambda c: post(
            c,
            "dispose",
            1000,
            **{"c1000-key": key(), "c1000-result_code": "SALE", "c1000-notes": "typed notes"},
        ),
        "typed notes",
    ),
    "changelead": (
        _ready_on_a_call,
        "/changelead/",
        lambda c: post(c, "change-lead", 1000, lead_phone_id="880002"),
        None,
    ),
    "createnewlead": (
        _ready_on_a_call,
        "/createnewlead/",
        lambda c: post(c, "new-lead", 1000, phone="07700 900999"),
        'value="07700 900999"',
    ),
    "connectcalls": (
        _two_calls,
        "/connectcalls/",
        lambda c: post(
            c,
            "transfer-complete",
            call1="1000",
            call2="1001",
            result_code1="TRANSFER",
            result_code2="BRIDGE_WARM",
            notes1="kept note",
        ),
        "kept note",
    ),
}


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_explains_every_failure_and_keeps_the_input(
    alice_client, simulator, sim_tenant, action, failure
):
    set_up, path, run, kept = ACTIONS[action]
    set_up(alice_client)
    sim_tenant.read_timeout = 0.5
    sim_tenant.save()
    fault, message = FAILURES[failure]
    simulator.fault(path_contains=path, **fault)
    simulator.clear_requests()
    response = run(alice_client)
    words = text(response)
    assert response.status_code == 200
    assert message in words
    assert "Traceback" not in words
    if kept:
        assert kept in response.content.decode()
    assert len([r for r in simulator.requests() if path in r["path"].lower()]) == 1
    entry = AuditEntry.objects.filter(method=action).latest("id")
    assert (
        entry.outcome
        == {"rejected": "rejected", "timeout": "uncertain", "malformed": "uncertain"}[failure]
    )


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_succeeds_and_is_audited(alice_client, simulator, action):
    set_up, _path, run, _kept = ACTIONS[action]
    set_up(alice_client)
    response = run(alice_client)
    assert "notice-success" in response.content.decode(), text(response)
    assert AuditEntry.objects.filter(method=action).latest("id").outcome == "ok"


def test_absurd_call_ids_and_keys_are_refused_cleanly(alice_client, on_a_call, simulator):
    huge = "18446744073709551616"
    assert (
        alice_client.post(f"/panel/calls/{huge}/hangup", {"key": key()}, **HTMX).status_code == 404
    )
    response = post(
        alice_client,
        "transfer-complete",
        call1=huge,
        call2="1000",
        result_code1="TRANSFER",
        result_code2="SALE",
    )
    assert response.status_code == 200
    assert "Choose a result for each call." in text(response)
    long_key = act(alice_client, on_a_call, "hold", key="k" * 64)
    assert "That form was incomplete" in text(long_key)
    assert sent(simulator, "hold") == []


def test_with_redis_down_the_panel_and_actions_still_work(alice_client, on_a_call, redis_server):
    redis_server.stop()
    try:
        page = alice_client.get(reverse("panel"))
        held = act(alice_client, on_a_call, "hold")
    finally:
        redis_server.start()
    assert page.status_code == 200
    assert "07700 900123" in text(page)
    assert 'data-version=""' in page.content.decode()  # no version: the page will not compare
    assert "Call on hold." in text(held)


def test_a_response_says_where_its_time_went(alice_client, simulator):
    """`Server-Timing`: the whole request, and the wait on MaxContact with its request count
    (an action and one read of her calls: never more than two per click)."""
    post(alice_client, "go-ready")  # her first click also logs her in to MaxContact
    simulator.config(latency_ms=20)
    response = post(alice_client, "go-ready")
    timing = dict(
        (name, (float(duration), int(count or 0)))
        for name, duration, count in re.findall(
            r'(\w+);dur=([0-9.]+)(?:;desc="(\d+) requests")?', response["Server-Timing"]
        )
    )
    assert timing["maxcontact"][1] == 2
    assert timing["maxcontact"][0] >= 40  # two requests, each 20 ms late
    assert timing["app"][0] >= timing["maxcontact"][0]
