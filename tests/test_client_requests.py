"""The exact requests the client sends, and what it does with each kind of answer.

These tests mock only the wire (`responses`), as CONVENTIONS.md 7 says; the same behaviour is
shown over real HTTP against the simulator in test_client_simulator.py.
"""

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from telephony.client import ClientConfig, Credentials, MaxContactClient, MemoryTokenStore
from telephony.entities import Token
from telephony.errors import (
    AuthenticationFailed,
    InvalidRequest,
    MalformedResponse,
    Rejected,
    Unreachable,
)

BASE = "https://acme.maxcontact.com/webservices"
TEL = f"{BASE}/services/telephony"
LOGIN_URL = f"{BASE}/services/apitoken/login/alice.agent"
OK = {"Success": True, "Data": None, "ResponseCode": 0, "ResponseDetail": ""}


def ok(data=None):
    return {**OK, "Data": data}


def make_client(*, token="tok-1", password="s3cret pass!", **config):
    store = MemoryTokenStore(Token(token, datetime.now(UTC), None) if token else None)
    return MaxContactClient(
        ClientConfig(base_url=BASE + "/", retry_backoff=0, **config),
        user_id=101,
        credentials=Credentials(login="alice.agent", password=password),
        token_store=store,
    )


def sent():
    return [call.request for call in responses.calls]


CALL = {"CallId": 1000, "PhoneNumber": "07700900123", "CallState": 2}


@pytest.mark.parametrize(
    ("invoke", "path", "query", "data"),
    [
        (lambda c: c.get_calls(), "/getcalls/user/101", {}, [CALL]),
        (lambda c: c.go_ready(), "/goready/user/101", {}, None),
        (lambda c: c.dial(phone="07700900123"), "/dial/user/101/phone/07700900123", {}, CALL),
        (
            lambda c: c.dial(phone="+44 7700 900123", lead_id=4294967301),
            "/dial/user/101/phone/%2B44%207700%20900123",
            {"leadid": ["4294967301"]},
            CALL,
        ),
        (lambda c: c.hangup(call_id=1000), "/hangup/user/101/call/1000", {}, None),
        (
            lambda c: c.dispose(call_id=1000, result_code="CALL BACK&X"),
            "/dispose/user/101/call/1000",
            {"resultcode": ["CALL BACK&X"]},
            None,
        ),
        (lambda c: c.hold(call_id=1000), "/hold/user/101/call/1000", {}, None),
        (lambda c: c.retrieve(call_id=1000), "/retrieve/user/101/call/1000", {}, None),
        (lambda c: c.stop_record(call_id=1000), "/stoprecord/user/101/call/1000", {}, None),
        (lambda c: c.start_record(call_id=1000), "/startrecord/user/101/call/1000", {}, None),
        (lambda c: c.campaigns(), "/campaigns/user/101", {}, []),
        (lambda c: c.users(), "/users/user/101", {}, []),
        (lambda c: c.result_codes(), "/resultcodes/user/101", {}, []),
        (lambda c: c.acd_queues(), "/acdqueues/user/101", {}, []),
        (
            lambda c: c.lead_phones(lead_id=4294967301),
            "/leadphones/user/101/lead/4294967301",
            {},
            [],
        ),
        (
            lambda c: c.change_lead(call_id=1000, lead_phone_id=77),
            "/changelead/user/101/call/1000/leadphone/77",
            {},
            None,
        ),
        (
            lambda c: c.create_new_lead(call_id=1000, phone="0161 496 0000"),
            "/createnewlead/user/101/call/1000/phone/0161%20496%200000",
            {},
            None,
        ),
        (
            lambda c: c.connect_calls(
                call1_id=1000, call2_id=1001, result_code1="TRANSFER", result_code2="BRIDGE_WARM"
            ),
            "/connectcalls/user/101",
            {
                "call1": ["1000"],
                "call2": ["1001"],
                "resultcode1": ["TRANSFER"],
                "resultcode2": ["BRIDGE_WARM"],
            },
            None,
        ),
        (
            lambda c: c.connect_calls(
                call1_id=1000,
                call2_id=1001,
                result_code1="TRANSFER",
                result_code2="SALE",
                notes1="warm to billing",
                notes2="card taken",
                num_sales1=0,
                num_sales2=2,
            ),
            "/connectcalls/user/101",
            {
                "call1": ["1000"],
                "call2": ["1001"],
                "resultcode1": ["TRANSFER"],
                "resultcode2": ["SALE"],
                "notes1": ["warm to billing"],
                "notes2": ["card taken"],
                "numsales1": ["0"],
                "numsales2": ["2"],
            },
            None,
        ),
    ],
)
@responses.activate
def test_every_method_sends_exactly_the_documented_request(invoke, path, query, data):
    responses.get(f"{TEL}{path}", json=ok(data))
    invoke(make_client())
    (request,) = sent()
    url = urlsplit(request.url)
    assert url.path == f"/webservices/services/telephony{path}"
    assert parse_qs(url.query, keep_blank_values=True) == query
    assert request.method == "GET"
    assert request.headers["Cookie"] == "TokenKey=tok-1"
    assert request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in request.headers
    assert request.body is None


@responses.activate
def test_login_sends_base64_of_the_password_alone_in_authorization():
    responses.get(LOGIN_URL, json={"TokenKey": "fresh"})
    responses.get(f"{TEL}/getcalls/user/101", json=ok([]))
    client = make_client(token=None)
    client.get_calls()
    login, getcalls = sent()
    assert urlsplit(login.url).path == "/webservices/services/apitoken/login/alice.agent"
    assert login.headers["Authorization"] == base64.b64encode(b"s3cret pass!").decode()
    assert not login.headers["Authorization"].startswith("Basic")
    assert "Cookie" not in login.headers
    assert getcalls.headers["Cookie"] == "TokenKey=fresh"
    assert client.token_store.load().key == "fresh"


@responses.activate
def test_login_name_is_one_encoded_path_segment():
    responses.get(f"{BASE}/services/apitoken/login/ops%2Fteam%40acme", json={"TokenKey": "t"})
    client = MaxContactClient(
        ClientConfig(base_url=BASE),
        user_id=5,
        credentials=Credentials(login="ops/team@acme", password="p"),
    )
    assert client.login().key == "t"


@responses.activate
def test_a_refused_login_is_an_authentication_error_with_the_vendors_words():
    responses.get(
        LOGIN_URL,
        status=401,
        json={"Success": False, "ResponseDetail": "Invalid username or password"},
    )
    with pytest.raises(AuthenticationFailed, match="Invalid username or password") as caught:
        make_client(token=None).get_calls()
    assert "s3cret" not in str(caught.value)
    assert len(sent()) == 1


@responses.activate
def test_an_expired_token_costs_exactly_one_login_then_the_request_is_resent():
    responses.get(
        f"{TEL}/hangup/user/101/call/1000",
        status=401,
        json={"Success": False, "ResponseCode": 401, "ResponseDetail": "expired"},
    )
    responses.get(f"{TEL}/hangup/user/101/call/1000", json=ok())
    responses.get(LOGIN_URL, json={"TokenKey": "tok-2"})
    make_client().hangup(call_id=1000)
    first, login, second = sent()
    assert first.headers["Cookie"] == "TokenKey=tok-1"
    assert "apitoken/login" in login.url
    assert second.headers["Cookie"] == "TokenKey=tok-2"


@responses.activate
def test_success_false_with_an_auth_code_also_means_log_in_again():
    responses.get(
        f"{TEL}/getcalls/user/101",
        json={"Success": False, "ResponseCode": 9, "ResponseDetail": "Token expired"},
    )
    responses.get(f"{TEL}/getcalls/user/101", json=ok([]))
    responses.get(LOGIN_URL, json={"TokenKey": "tok-2"})
    assert make_client(auth_failure_codes=frozenset({9})).get_calls() == []
    assert len(sent()) == 3


@responses.activate
def test_a_token_refused_twice_gives_up_after_one_login():
    responses.get(f"{TEL}/getcalls/user/101", status=401, body="")
    responses.get(LOGIN_URL, json={"TokenKey": "tok-2"})
    with pytest.raises(AuthenticationFailed, match="even after logging in again"):
        make_client().get_calls()
    assert [urlsplit(r.url).path.split("/")[3] for r in sent()] == [
        "telephony",
        "apitoken",
        "telephony",
    ]


@responses.activate
def test_a_pasted_token_is_used_and_cannot_be_renewed():
    responses.get(f"{TEL}/getcalls/user/101", status=401, body="")
    client = MaxContactClient(
        ClientConfig(base_url=BASE),
        user_id=101,
        credentials=Credentials(static_token="pasted-token"),
    )
    with pytest.raises(AuthenticationFailed):
        client.get_calls()
    (request,) = sent()
    assert request.headers["Cookie"] == "TokenKey=pasted-token"


@responses.activate
def test_a_token_past_its_known_expiry_is_renewed_before_use():
    responses.get(LOGIN_URL, json={"TokenKey": "tok-2"})
    responses.get(f"{TEL}/getcalls/user/101", json=ok([]))
    client = make_client()
    client.token_store.save(
        Token("old", datetime.now(UTC) - timedelta(hours=2), datetime.now(UTC) - timedelta(1))
    )
    client.get_calls()
    assert sent()[1].headers["Cookie"] == "TokenKey=tok-2"


@responses.activate
def test_a_configured_token_lifetime_sets_the_expiry():
    responses.get(LOGIN_URL, json={"TokenKey": "tok-2"})
    token = make_client(token=None, token_lifetime=timedelta(minutes=20)).login()
    assert token.expires_at - token.obtained_at == timedelta(minutes=20)


@responses.activate
def test_rejection_carries_response_code_and_detail():
    responses.get(
        f"{TEL}/dispose/user/101/call/1000",
        json={"Success": False, "ResponseCode": 3, "ResponseDetail": "Unknown result code 'FOO'"},
    )
    with pytest.raises(Rejected) as caught:
        make_client().dispose(call_id=1000, result_code="FOO")
    assert caught.value.response_code == 3
    assert caught.value.agent_message == "Unknown result code 'FOO'"
    assert len(sent()) == 1


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503, "body": "<html>Service Unavailable</html>"},
        {"status": 500, "body": "Runtime Error"},
        {"body": requests.ReadTimeout("slow")},
        {"body": requests.ConnectionError("Connection aborted. RemoteDisconnected")},
    ],
)
@responses.activate
def test_an_action_that_may_have_reached_the_server_is_never_resent(failure):
    responses.get(f"{TEL}/dial/user/101/phone/0123456789", **failure)
    responses.get(f"{TEL}/dial/user/101/phone/0123456789", json=ok(CALL))
    with pytest.raises(Unreachable) as caught:
        make_client().dial(phone="0123456789")
    assert caught.value.may_have_reached_server
    assert not caught.value.safe_to_retry
    assert "not sent twice" in caught.value.agent_message
    assert len(sent()) == 1


@responses.activate
def test_a_refused_connection_is_safe_to_retry_but_an_action_is_still_sent_once():
    responses.get(
        f"{TEL}/hangup/user/101/call/1000",
        body=requests.ConnectionError("NewConnectionError: Connection refused"),
    )
    with pytest.raises(Unreachable) as caught:
        make_client().hangup(call_id=1000)
    assert caught.value.safe_to_retry
    assert len(sent()) == 1


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503, "body": ""},
        {"body": requests.ReadTimeout("slow")},
        {"body": requests.ConnectionError("reset")},
    ],
)
@responses.activate
def test_reads_are_retried_on_failure(failure):
    responses.get(f"{TEL}/getcalls/user/101", **failure)
    responses.get(f"{TEL}/getcalls/user/101", json=ok([CALL]))
    assert [c.call_id for c in make_client().get_calls()] == [1000]
    assert len(sent()) == 2


@responses.activate
def test_reads_give_up_after_the_configured_attempts():
    responses.get(f"{TEL}/users/user/101", status=503)
    with pytest.raises(Unreachable, match="HTTP 503"):
        make_client(read_attempts=3).users()
    assert len(sent()) == 3


@responses.activate
def test_an_oversized_answer_is_refused():
    responses.get(f"{TEL}/campaigns/user/101", body=json.dumps(ok([{"x": "y" * 5000}])))
    with pytest.raises(MalformedResponse, match="larger than 1000 bytes"):
        make_client(max_response_bytes=1000).campaigns()


@responses.activate
def test_garbage_is_a_malformed_response():
    responses.get(f"{TEL}/getcalls/user/101", body=b"\x00\xff garbage", status=200)
    with pytest.raises(MalformedResponse):
        make_client().get_calls()


@responses.activate
def test_cookies_set_by_the_server_are_never_sent_back():
    responses.get(
        f"{TEL}/getcalls/user/101",
        json=ok([]),
        headers={"Set-Cookie": "ASP.NET_SessionId=abc; Path=/"},
    )
    responses.get(f"{TEL}/users/user/101", json=ok([]))
    client = make_client()
    client.get_calls()
    client.users()
    assert sent()[1].headers["Cookie"] == "TokenKey=tok-1"


@responses.activate
def test_a_404_says_to_check_the_base_url():
    responses.get(f"{TEL}/goready/user/101", status=404, body="Endpoint not found.")
    with pytest.raises(Exception, match="check the tenant's base URL"):
        make_client().go_ready()


@responses.activate
def test_dial_returns_the_new_call_and_the_vendors_detail():
    responses.get(
        f"{TEL}/dial/user/101/phone/0123456789", json={**ok(CALL), "ResponseDetail": "Dialling"}
    )
    result = make_client().dial(phone="0123456789")
    assert result.call.call_id == 1000
    assert result.response_detail == "Dialling"


def test_credentials_never_show_in_a_repr():
    credentials = Credentials(login="alice.agent", password="pw-123", static_token="tk-456")
    assert "pw-123" not in repr(credentials)
    assert "tk-456" not in repr(credentials)


@pytest.mark.parametrize("phone", ["..", ".", "../../goready/user/102", "abc", "", "0123/456"])
@responses.activate
def test_something_that_is_not_a_phone_number_is_never_sent(phone):
    with pytest.raises(InvalidRequest):
        make_client().dial(phone=phone)
    with pytest.raises(InvalidRequest):
        make_client().create_new_lead(call_id=1000, phone=phone)
    assert sent() == []


@responses.activate
def test_a_successful_dial_with_unreadable_data_is_still_a_success():
    responses.get(f"{TEL}/dial/user/101/phone/0123456789", json=ok(12345))
    result = make_client().dial(phone="0123456789")
    assert result.call is None
    assert len(sent()) == 1


@responses.activate
def test_an_action_refused_with_a_bare_403_is_not_resent():
    responses.get(f"{TEL}/dial/user/101/phone/0123456789", status=403, body="Forbidden")
    responses.get(LOGIN_URL, json={"TokenKey": "tok-2"})
    client = make_client()
    with pytest.raises(AuthenticationFailed, match="not sent again"):
        client.dial(phone="0123456789")
    dials = [r for r in sent() if "/dial/" in r.url]
    assert len(dials) == 1
    assert client.token_store.load().key == "tok-2"  # the next click works


@responses.activate
def test_an_action_refused_with_403_and_success_false_is_resent_once():
    responses.get(
        f"{TEL}/hold/user/101/call/1000",
        status=403,
        json={"Success": False, "ResponseCode": 401, "ResponseDetail": "Denied"},
    )
    responses.get(f"{TEL}/hold/user/101/call/1000", json=ok())
    responses.get(LOGIN_URL, json={"TokenKey": "tok-2"})
    make_client().hold(call_id=1000)
    kinds = [
        "apitoken" if "apitoken" in r.url else urlsplit(r.url).path.split("/")[4] for r in sent()
    ]
    assert kinds == ["hold", "apitoken", "hold"]


@responses.activate
def test_a_read_refused_with_a_bare_403_is_resent_after_login():
    responses.get(f"{TEL}/getcalls/user/101", status=403, body="")
    responses.get(f"{TEL}/getcalls/user/101", json=ok([]))
    responses.get(LOGIN_URL, json={"TokenKey": "tok-2"})
    assert make_client().get_calls() == []


@responses.activate
def test_a_pasted_token_a_cookie_cannot_carry_is_refused_before_sending():
    client = MaxContactClient(
        ClientConfig(base_url=BASE),
        user_id=101,
        credentials=Credentials(static_token="bad token;\r\nX: 1"),
    )
    with pytest.raises(AuthenticationFailed, match="paste it again") as caught:
        client.get_calls()
    assert "bad token" not in str(caught.value)
    assert sent() == []


def test_a_token_that_another_process_replaced_is_not_discarded():
    store = MemoryTokenStore(Token("newer", datetime.now(UTC), None))
    store.discard("refused-old-one")
    assert store.load().key == "newer"
    store.discard("newer")
    assert store.load() is None


def test_a_server_that_trickles_is_cut_off_at_the_deadline():
    """connect 0.5 s + 2 x read 0.5 s: a body sent a byte every 0.3 s is given up on."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def trickle():
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            if stop.is_set():
                break
            connection.sendall(b" ")
            time.sleep(0.3)
        connection.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    client = MaxContactClient(
        ClientConfig(
            base_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
            connect_timeout=0.5,
            read_timeout=0.5,
            read_attempts=1,
        ),
        user_id=101,
        credentials=Credentials(static_token="t"),
    )
    started = time.monotonic()
    try:
        with pytest.raises(Unreachable) as caught:
            client.get_calls()
    finally:
        stop.set()
        listener.close()
    assert caught.value.may_have_reached_server
    assert time.monotonic() - started < 10  # the trickle alone would take 30 s
