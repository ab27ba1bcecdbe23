"""The client against the simulator over real HTTP: every method, both formats, every fault.

The simulator is a separate process (tests/simulator_control.py); its request log shows
exactly what the client sent and how many times.
"""

import base64
from datetime import datetime

import pytest

from telephony.client import ClientConfig, Credentials, MaxContactClient, MemoryTokenStore
from telephony.errors import AuthenticationFailed, MalformedResponse, Rejected, Unreachable
from telephony.simulator.world import SEED_AGENTS

ALICE = SEED_AGENTS[0]
BOB = SEED_AGENTS[1]


def client_for(simulator, agent=ALICE, **config):
    config.setdefault("retry_backoff", 0.01)
    return MaxContactClient(
        ClientConfig(base_url=simulator.base_url, **config),
        user_id=agent.user_id,
        credentials=Credentials(login=agent.login, password=agent.password),
        token_store=MemoryTokenStore(),
    )


def methods(simulator, path_contains):
    return [r for r in simulator.requests() if path_contains in r["path"].lower()]


@pytest.fixture(params=["json", "xml"])
def alice(request, simulator):
    return client_for(simulator, ask_for_json=request.param == "json")


def test_the_whole_vendor_api_round_trip(alice, simulator):
    """Every method, in the order an agent's day uses them, in XML and in JSON."""
    assert alice.get_calls() == []
    alice.go_ready()
    dialled = alice.dial(phone="07700900123")
    first = dialled.call
    assert first.call_id == 1000
    assert first.phone_number == "07700900123"
    assert isinstance(first.start_time, datetime)
    assert first.start_time.tzinfo is not None
    assert [c.call_id for c in alice.get_calls()] == [1000]

    alice.hold(call_id=1000)
    held_state = alice.get_calls()[0].state
    alice.retrieve(call_id=1000)
    assert alice.get_calls()[0].state != held_state

    alice.stop_record(call_id=1000)
    paused = alice.get_calls()[0].recording_state
    alice.start_record(call_id=1000)
    assert alice.get_calls()[0].recording_state != paused

    lead_id = alice.get_calls()[0].lead_id
    assert lead_id is not None
    phones = alice.lead_phones(lead_id=lead_id)
    assert phones
    assert all(p.lead_id == lead_id for p in phones)
    alice.create_new_lead(call_id=1000, phone="07700900999")
    new_lead = alice.get_calls()[0].lead_id
    assert new_lead != lead_id
    alice.change_lead(call_id=1000, lead_phone_id=phones[0].lead_phone_id)
    assert alice.get_calls()[0].lead_id == lead_id

    alice.hold(call_id=1000)
    second = alice.dial(phone="01614960000").call
    assert second.call_id == 1001
    alice.connect_calls(
        call1_id=1000,
        call2_id=1001,
        result_code1="TRANSFER",
        result_code2="BRIDGE_WARM",
        notes1="to billing",
        num_sales2=0,
    )
    assert alice.get_calls() == []

    third = alice.dial(phone="+447700900456").call
    alice.hangup(call_id=third.call_id)
    alice.dispose(call_id=third.call_id, result_code="SALE")
    assert alice.get_calls() == []

    assert {c.code for c in alice.result_codes()} >= {"SALE", "NOSALE", "HKT", "BRIDGE_WARM"}
    assert any(u.id == ALICE.user_id and u.full_name == ALICE.full_name for u in alice.users())
    assert alice.campaigns()
    assert all(c.campaign_id and c.name for c in alice.campaigns())
    assert alice.acd_queues()

    # One login for the whole day; every telephony request carried the token as a cookie.
    log = simulator.requests()
    assert len([r for r in log if "apitoken" in r["path"].lower()]) == 1
    telephony = [r for r in log if "/telephony/" in r["path"].lower()]
    assert all(_header(r, "Cookie").startswith("TokenKey=") for r in telephony)
    wants_json = alice.config.ask_for_json
    assert all((_header(r, "Content-Type") == "application/json") == wants_json for r in telephony)


def _header(request, name):
    for key, value in request["headers"].items():
        if key.lower() == name.lower():
            return value
    return ""


def test_the_login_carries_the_base64_password_alone(simulator):
    client_for(simulator).login()
    (login,) = methods(simulator, "apitoken")
    assert login["path"].endswith(f"/login/{ALICE.login}")
    assert _header(login, "Authorization") == base64.b64encode(ALICE.password.encode()).decode()


def test_a_wrong_password_is_refused_with_the_vendors_words(simulator):
    client = MaxContactClient(
        ClientConfig(base_url=simulator.base_url),
        user_id=ALICE.user_id,
        credentials=Credentials(login=ALICE.login, password="wrong"),
    )
    with pytest.raises(AuthenticationFailed, match="Invalid username or password") as caught:
        client.get_calls()
    assert "wrong" not in str(caught.value).replace("wrong password", "")


def test_connect_calls_sends_notes1_and_notes2_by_their_real_names(simulator):
    alice = client_for(simulator)
    alice.go_ready()
    alice.dial(phone="07700900123")
    alice.hold(call_id=1000)
    alice.dial(phone="01614960000")
    alice.connect_calls(
        call1_id=1000,
        call2_id=1001,
        result_code1="TRANSFER",
        result_code2="SALE",
        notes1="warm",
        notes2="sold",
        num_sales1=0,
        num_sales2=1,
    )
    (request,) = methods(simulator, "connectcalls")
    assert request["params"] == {
        "call1": ["1000"],
        "call2": ["1001"],
        "resultcode1": ["TRANSFER"],
        "resultcode2": ["SALE"],
        "notes1": ["warm"],
        "notes2": ["sold"],
        "numsales1": ["0"],
        "numsales2": ["1"],
    }


def test_rejections_carry_the_vendors_detail(simulator):
    alice = client_for(simulator)
    alice.go_ready()
    call_id = alice.dial(phone="07700900123").call.call_id
    with pytest.raises(Rejected, match="FOO"):
        alice.dispose(call_id=call_id, result_code="FOO")
    with pytest.raises(Rejected):
        alice.retrieve(call_id=call_id)  # not on hold
    assert [c.call_id for c in alice.get_calls()] == [call_id]  # nothing lost


def test_another_agents_call_is_refused(simulator):
    alice, bob = client_for(simulator), client_for(simulator, BOB)
    bob.go_ready()
    bobs_call = bob.dial(phone="07700900123").call.call_id
    with pytest.raises(Rejected, match=str(bobs_call)):
        alice.hangup(call_id=bobs_call)
    assert [c.call_id for c in bob.get_calls()] == [bobs_call]


@pytest.mark.parametrize(
    ("fault", "applied"),
    [
        ({"kind": "status", "status": 503}, False),
        ({"kind": "status", "status": 500}, False),
        ({"kind": "drop"}, True),
        ({"kind": "latency", "delay": 1.5}, True),
        ({"kind": "truncate"}, True),
    ],
)
def test_an_action_hit_by_a_fault_was_sent_exactly_once(simulator, fault, applied):
    alice = client_for(simulator, read_timeout=0.5)
    alice.go_ready()
    simulator.fault(path_contains="/dial/", **fault)
    with pytest.raises(Unreachable) as caught:
        alice.dial(phone="07700900123")
    assert caught.value.may_have_reached_server
    assert "not sent twice" in caught.value.agent_message
    assert len(methods(simulator, "/dial/")) == 1
    # Whether it happened is the server's business; the client only reports the doubt.
    assert len(alice.get_calls()) == (1 if applied else 0)


@pytest.mark.parametrize(
    "fault",
    [{"kind": "status", "status": 503}, {"kind": "drop"}, {"kind": "latency", "delay": 1.5}],
)
def test_a_read_hit_by_a_fault_is_retried(simulator, fault):
    alice = client_for(simulator, read_timeout=0.5)
    alice.login()
    simulator.fault(path_contains="getcalls", **fault)
    assert alice.get_calls() == []
    assert len(methods(simulator, "getcalls")) == 2


def test_an_expired_token_costs_one_login(simulator):
    alice = client_for(simulator)
    alice.go_ready()
    simulator.expire_tokens()
    alice.dial(phone="07700900123")
    paths = [r["path"].lower().split("/services/")[1].split("/")[1] for r in simulator.requests()]
    assert paths == ["login", "goready", "dial", "login", "dial"]
    assert len(alice.get_calls()) == 1  # dialled once, not twice


def test_an_expired_token_fault_costs_one_login(simulator):
    alice = client_for(simulator)
    alice.login()
    simulator.fault("expired_token", path_contains="getcalls")
    alice.get_calls()
    assert len(methods(simulator, "apitoken")) == 2
    assert len(methods(simulator, "getcalls")) == 2


def test_success_false_auth_failures_are_recognised_too(simulator):
    simulator.config(auth_failure="success_false")
    alice = client_for(simulator)
    alice.login()
    simulator.expire_tokens()
    assert alice.get_calls() == []
    assert len(methods(simulator, "apitoken")) == 2


@pytest.mark.parametrize("kind", ["xml_bomb", "garbage"])
def test_a_bomb_or_garbage_is_a_clear_error(simulator, kind):
    alice = client_for(simulator)
    alice.login()
    simulator.fault(kind, path_contains="getcalls", count=5)
    with pytest.raises(MalformedResponse) as caught:
        alice.get_calls()
    assert "MaxContact" in caught.value.agent_message


@pytest.mark.parametrize(
    "variant",
    [
        {"key_case": "camel"},
        {"json_dates": "iso"},
        {"token_reply": "wrapped"},
        {"lead_phone_id_field": "ID"},
    ],
)
def test_the_client_tolerates_the_shapes_the_vendor_leaves_open(simulator, variant):
    simulator.config(**variant)
    alice = client_for(simulator)
    alice.go_ready()
    call = alice.dial(phone="07700900123").call
    assert call.call_id == 1000
    assert call.start_time is not None
    phones = alice.lead_phones(lead_id=alice.get_calls()[0].lead_id)
    assert phones
    assert all(p.lead_phone_id is not None for p in phones)


def test_a_lead_phone_without_any_id_is_reported_as_none(simulator):
    simulator.config(lead_phone_id_field=None, call_lead_id=True)
    alice = client_for(simulator)
    alice.go_ready()
    alice.dial(phone="07700900123")
    phones = alice.lead_phones(lead_id=alice.get_calls()[0].lead_id)
    assert [p.lead_phone_id for p in phones] == [None] * len(phones)


def test_an_unreachable_simulator_is_safe_to_retry():
    client = MaxContactClient(
        ClientConfig(base_url="http://127.0.0.1:9/webservices", connect_timeout=0.5),
        user_id=1,
        credentials=Credentials(static_token="t"),
    )
    with pytest.raises(Unreachable) as caught:
        client.hangup(call_id=1)
    assert caught.value.safe_to_retry
    assert "Nothing reached MaxContact" in caught.value.agent_message
