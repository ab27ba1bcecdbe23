"""The MaxContact simulator over real HTTP, read with requests, json and the stdlib XML parser.

Nothing here imports the simulator or the client: every expectation is written out from the
vendor text, maxcontact-notes.md and docs/simulator.md.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.simulator_control import (
    Simulator,
    SimulatorControlError,
    start_simulator,
    stop_simulator,
)

TELEPHONY_NS = "http://schemas.datacontract.org/2004/07/MaxContact.Telephony.Api"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ARRAYS_NS = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
T = f"{{{TELEPHONY_NS}}}"
NIL = f"{{{XSI_NS}}}nil"
XSI_TYPE = f"{{{XSI_NS}}}type"
XML_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$")
CALL_FIELDS = [
    "CallId", "CallStartTime", "CallState", "CallStatus", "CustomerName", "CustomerName2",
    "LeadId", "PhoneNumber", "RecordingState",
]  # fmt: skip
# The simulator's enumeration choices (docs/simulator.md).
RINGING, CONNECTED, HELD, ENDED = 1, 2, 3, 4
INBOUND, OUTBOUND = 1, 2
NOT_RECORDED, RECORDING, STOPPED = 0, 1, 2


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def parse_xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 (the simulator under test is the only source)


def token_url(simulator: Simulator, login: str) -> str:
    return f"{simulator.base_url}/services/apitoken/login/{login}"


def log_in(simulator: Simulator, login: str = "alice.agent", password: str = "") -> str:
    password = password or f"{login.split('.')[0]}-maxcontact-pw"
    response = requests.get(
        token_url(simulator, login),
        headers={"Authorization": b64(password), "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["TokenKey"]
    return token


@dataclass
class Agent:
    """One agent's view of the API: her token and user id, plus request helpers."""

    simulator: Simulator
    token: str
    user_id: int

    def url(self, method: str, *path: str | int) -> str:
        tail = "".join(f"/{part}" for part in path)
        return f"{self.simulator.base_url}/services/telephony/{method}/user/{self.user_id}{tail}"

    def get(
        self, method: str, *path: str | int, as_json: bool = True, **params: Any
    ) -> requests.Response:
        headers = {"Cookie": f"TokenKey={self.token}"}
        if as_json:
            headers["Content-Type"] = "application/json"
        return requests.get(self.url(method, *path), headers=headers, params=params, timeout=5)

    def ok(self, method: str, *path: str | int, **params: Any) -> Any:
        response = self.get(method, *path, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["Success"] is True, body
        assert body["ResponseCode"] == 0
        return body["Data"]

    def rejected(self, method: str, *path: str | int, **params: Any) -> dict[str, Any]:
        response = self.get(method, *path, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["Success"] is False, body
        assert body["Data"] is None
        assert body["ResponseCode"] != 0
        return body

    def calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.ok("getcalls")
        return calls

    def state(self) -> str:
        agents = self.simulator.state()["agents"]
        state: str = next(a["state"] for a in agents if a["user_id"] == self.user_id)
        return state


@pytest.fixture
def alice(simulator: Simulator) -> Agent:
    return Agent(simulator, log_in(simulator, "alice.agent"), 101)


@pytest.fixture
def bob(simulator: Simulator) -> Agent:
    return Agent(simulator, log_in(simulator, "bob.agent"), 102)


def wait_for(condition: Any, timeout: float = 5.0) -> Any:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"condition not met within {timeout} s")


def raw_exchange(simulator: Simulator, path: str, headers: dict[str, str]) -> bytes:
    """Send one GET on a fresh socket and return every byte received until the server closes."""
    parts = urlsplit(simulator.root_url)
    assert parts.hostname is not None
    assert parts.port is not None
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    received = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while chunk := sock.recv(65536):
            received += chunk
    return received


# ---------------------------------------------------------------------------------------------
# Token service


def test_token_service_issues_a_token_for_the_base64_of_the_password_alone(simulator):
    response = requests.get(
        token_url(simulator, "alice.agent"),
        headers={"Authorization": b64("alice-maxcontact-pw")},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    root = parse_xml(response.content)
    assert root.tag.endswith("}ApiTokenResponse")
    assert [child.tag.split("}")[1] for child in root] == ["TokenKey"]
    assert len(root[0].text or "") >= 20

    as_json = requests.get(
        token_url(simulator, "alice.agent"),
        headers={"Authorization": b64("alice-maxcontact-pw"), "Content-Type": "application/json"},
        timeout=5,
    )
    assert as_json.headers["Content-Type"] == "application/json; charset=utf-8"
    assert list(as_json.json()) == ["TokenKey"]
    assert as_json.json()["TokenKey"] != root[0].text
    assert simulator.state()["tokens"] == 2


@pytest.mark.parametrize(
    "authorization",
    [
        b64("wrong-password"),
        "Basic " + b64("alice-maxcontact-pw"),
        "Basic " + b64("alice.agent:alice-maxcontact-pw"),
        "",
    ],
    ids=["wrong-password", "basic-prefix", "basic-user-colon-password", "missing"],
)
def test_token_service_refuses_a_bad_password_or_http_basic_auth(simulator, authorization):
    response = requests.get(
        token_url(simulator, "alice.agent"),
        headers={"Authorization": authorization, "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json() == {
        "Data": None,
        "ResponseCode": 401,
        "ResponseDetail": "Invalid username or password",
        "Success": False,
    }
    assert simulator.state()["tokens"] == 0


def test_token_service_refuses_an_unknown_login(simulator):
    response = requests.get(
        token_url(simulator, "mallory"), headers={"Authorization": b64("x")}, timeout=5
    )
    assert response.status_code == 401
    assert parse_xml(response.content).find(f"{T}Success").text == "false"


def test_token_reply_can_be_wrapped_in_a_call_action_response(simulator):
    simulator.config(token_reply="wrapped")
    headers = {"Authorization": b64("alice-maxcontact-pw")}
    xml_reply = requests.get(token_url(simulator, "alice.agent"), headers=headers, timeout=5)
    data = parse_xml(xml_reply.content).find(f"{T}Data")
    assert data.get(XSI_TYPE) == "ApiTokenResponse"
    assert data.find(f"{T}TokenKey").text

    headers["Content-Type"] = "application/json"
    body = requests.get(token_url(simulator, "alice.agent"), headers=headers, timeout=5).json()
    assert body["Success"] is True
    assert body["Data"]["TokenKey"]


def test_a_token_works_for_any_user_by_default_but_only_its_own_when_user_scoped(simulator):
    alice_token = log_in(simulator, "alice.agent")
    as_bob = Agent(simulator, alice_token, 102)
    assert as_bob.calls() == []

    simulator.config(token_scope="user")
    body = as_bob.rejected("getcalls")
    assert "102" in body["ResponseDetail"]
    assert Agent(simulator, alice_token, 101).calls() == []


# ---------------------------------------------------------------------------------------------
# Authentication of telephony calls


@pytest.mark.parametrize("cookie", [None, "TokenKey=not-a-token", "Other=1"])
def test_missing_or_unknown_token_gets_http_401_by_default(simulator, cookie):
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = cookie
    response = requests.get(
        f"{simulator.base_url}/services/telephony/getcalls/user/101", headers=headers, timeout=5
    )
    assert response.status_code == 401
    assert response.json() == {
        "Data": None,
        "ResponseCode": 401,
        "ResponseDetail": "Token is invalid or has expired",
        "Success": False,
    }


def test_expired_token_is_refused_and_a_new_login_works(simulator, alice):
    alice.ok("goready")
    simulator.expire_tokens()
    assert alice.get("getcalls").status_code == 401
    assert alice.state() == "ready"  # nothing else changed
    alice.token = log_in(simulator)
    assert alice.calls() == []


def test_auth_failure_can_be_reported_as_success_false_with_http_200(simulator, alice):
    simulator.config(auth_failure="success_false")
    simulator.expire_tokens()
    body = alice.rejected("getcalls")
    assert body["ResponseCode"] == 401
    assert body["ResponseDetail"] == "Token is invalid or has expired"


def test_token_lifetime_is_settable(simulator):
    simulator.token_lifetime(1.0)
    agent = Agent(simulator, log_in(simulator), 101)
    assert agent.calls() == []
    wait_for(lambda: agent.get("getcalls").status_code == 401, timeout=4)


# ---------------------------------------------------------------------------------------------
# Formats, paths, errors


def test_responses_are_datacontract_xml_by_default(alice):
    alice.ok("dial", "phone", "07700900123")
    response = alice.get("getcalls", as_json=False)
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert response.content.startswith(
        b'<CallActionResponse xmlns="' + TELEPHONY_NS.encode() + b'" xmlns:i="'
    )
    root = parse_xml(response.content)
    assert root.tag == f"{T}CallActionResponse"
    members = ("Data", "ResponseCode", "ResponseDetail", "Success")
    assert [c.tag for c in root] == [f"{T}{n}" for n in members]
    data = root.find(f"{T}Data")
    assert data.get(XSI_TYPE) == "ArrayOfCall"
    (call,) = list(data)
    assert call.tag == f"{T}Call"
    assert [c.tag for c in call] == [f"{T}{n}" for n in CALL_FIELDS]  # ordinal order
    assert call.find(f"{T}CallId").text == "1000"
    assert XML_DATE.match(call.find(f"{T}CallStartTime").text)
    assert call.find(f"{T}CustomerName").text == "Dana Doyle"
    assert call.find(f"{T}CustomerName2").get(NIL) == "true"
    assert call.find(f"{T}LeadId").text == "4000123"
    assert root.find(f"{T}Success").text == "true"
    assert root.find(f"{T}ResponseCode").text == "0"


def test_one_object_in_data_carries_its_type_and_null_data_is_nil(alice):
    dialled = parse_xml(alice.get("dial", "phone", "07700900123", as_json=False).content)
    assert dialled.find(f"{T}Data").get(XSI_TYPE) == "Call"
    ready = parse_xml(alice.get("goready", as_json=False).content)
    assert ready.find(f"{T}Data").get(NIL) == "true"


def test_json_when_the_request_says_content_type_json_with_wcf_dates(alice):
    alice.ok("dial", "phone", "07700900123")
    response = alice.get("getcalls")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert re.search(rb'"CallStartTime":"\\/Date\(\d{13}\+0000\)\\/"', response.content)
    body = response.json()
    assert list(body) == ["Data", "ResponseCode", "ResponseDetail", "Success"]
    (call,) = body["Data"]
    assert list(call) == CALL_FIELDS
    assert call["CustomerName2"] is None
    assert re.fullmatch(r"/Date\(\d{13}\+0000\)/", call["CallStartTime"])


def test_json_single_object_names_its_wcf_type(alice):
    call = alice.ok("dial", "phone", "07700900123")
    assert call["__type"] == "Call:#MaxContact.Telephony.Api"


def test_json_dates_and_key_case_follow_the_config(simulator, alice):
    simulator.config(json_dates="iso", key_case="camel")
    alice_dial = alice.get("dial", "phone", "07700900123").json()
    assert alice_dial["success"] is True
    assert XML_DATE.match(alice_dial["data"]["callStartTime"])
    assert alice_dial["data"]["callId"] == 1000
    assert "\\/" not in alice.get("getcalls").text


def test_call_lead_id_can_be_turned_off(simulator, alice):
    simulator.config(call_lead_id=False)
    call = alice.ok("dial", "phone", "07700900123")
    assert "LeadId" not in call


def test_paths_and_query_names_are_case_insensitive(simulator, alice):
    alice.ok("dial", "phone", "07700900123")
    url = f"{simulator.root_url}/WebServices/Services/Telephony/Dispose/User/101/Call/1000"
    response = requests.get(
        url,
        params={"ResultCode": "SALE"},
        headers={"Cookie": f"TokenKey={alice.token}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.json()["Success"] is True
    assert alice.calls() == []
    assert simulator.state()["dispositions"][0]["result_code"] == "SALE"


def test_an_encoded_phone_in_the_path_is_decoded(simulator, alice):
    call = alice.ok("dial", "phone", "%2B447700900123")
    assert call["PhoneNumber"] == "+447700900123"
    assert simulator.requests("dial")[0]["path"].endswith("/phone/%2B447700900123")


def test_unknown_path_is_a_404_endpoint_not_found_page(simulator, alice):
    for path in ("/webservices/services/telephony/teleport/user/101", "/webservices/nothing"):
        response = requests.get(
            simulator.root_url + path, headers={"Cookie": f"TokenKey={alice.token}"}, timeout=5
        )
        assert response.status_code == 404
        assert response.headers["Content-Type"].startswith("text/html")
        assert "Endpoint not found." in response.text


def test_only_get_is_allowed(simulator, alice):
    response = requests.post(
        alice.url("goready"), headers={"Cookie": f"TokenKey={alice.token}"}, timeout=5
    )
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert alice.state() == "not_ready"


def test_a_malformed_id_is_rejected_with_a_readable_detail(alice):
    body = alice.rejected("hangup", "call", "abc")
    assert body["ResponseDetail"] == "Invalid call id 'abc'"
    assert body["ResponseCode"] == 1


def test_a_user_who_is_not_logged_in_is_rejected(simulator):
    agent = Agent(simulator, log_in(simulator), 999)
    body = agent.rejected("getcalls")
    assert body["ResponseDetail"] == "User 999 is not logged in"
    assert body["ResponseCode"] == 2


# ---------------------------------------------------------------------------------------------
# The world: what each method does


def test_go_ready_makes_an_idle_agent_ready(alice):
    assert alice.state() == "not_ready"
    assert alice.ok("goready") is None
    assert alice.state() == "ready"


def test_dial_creates_call_1000_and_a_new_lead_when_no_lead_matches(simulator, alice):
    call = alice.ok("dial", "phone", "07700900999")
    assert call["CallId"] == 1000
    assert call["CallState"] == CONNECTED
    assert call["CallStatus"] == OUTBOUND
    assert call["RecordingState"] == RECORDING  # alice's campaign records automatically
    assert call["CustomerName"] == ""
    assert call["LeadId"] > 2**31
    leads = {lead["lead_id"]: lead for lead in simulator.state()["leads"]}
    assert leads[call["LeadId"]]["phones"][0]["phone_number"] == "07700900999"
    assert alice.calls()[0]["CallId"] == 1000
    assert alice.state() == "on_call"


def test_dial_matches_the_newest_lead_with_that_phone(alice):
    call = alice.ok("dial", "phone", "07700900456")
    assert call["LeadId"] == 3000000017
    assert call["CustomerName"] == "Gus Green"
    assert call["CustomerName2"] == "Green & Sons"


def test_dial_with_a_lead_id_uses_that_lead_and_an_unknown_one_is_rejected(alice):
    assert alice.rejected("dial", "phone", "07700900456", leadid=55)["ResponseDetail"] == (
        "Lead 55 not found"
    )
    assert alice.calls() == []
    call = alice.ok("dial", "phone", "07700900456", leadid=4000456)
    assert call["LeadId"] == 4000456
    assert call["CustomerName"] == "Eli Evans"


@pytest.mark.parametrize("phone", ["abc", "12345", "0770090012345678", "++447700900123"])
def test_dial_rejects_an_invalid_phone_number(alice, phone):
    body = alice.rejected("dial", "phone", phone)
    assert body["ResponseDetail"] == f"Invalid phone number '{phone}'"
    assert alice.calls() == []


def test_dial_waits_for_the_ring_when_configured(simulator, alice):
    simulator.config(dial_ring_seconds=1.0)
    call = alice.ok("dial", "phone", "07700900123")
    assert call["CallState"] == RINGING
    assert call["RecordingState"] == NOT_RECORDED
    body = alice.rejected("hold", "call", 1000)
    assert body["ResponseDetail"] == "Call 1000 is not connected yet"
    wait_for(lambda: alice.calls()[0]["CallState"] == CONNECTED, timeout=4)
    assert alice.calls()[0]["RecordingState"] == RECORDING


def test_dial_is_refused_during_a_connected_call_but_allowed_with_the_customer_on_hold(alice):
    alice.ok("dial", "phone", "07700900123")
    body = alice.rejected("dial", "phone", "02079460017")
    assert "already on call 1000" in body["ResponseDetail"]
    alice.ok("hold", "call", 1000)
    third_party = alice.ok("dial", "phone", "02079460017")
    assert third_party["CallId"] == 1001
    assert [c["CallState"] for c in alice.calls()] == [HELD, CONNECTED]


def test_hangup_puts_the_agent_in_wrap_and_the_call_stays_listed_as_ended(alice):
    alice.ok("dial", "phone", "07700900123")
    assert alice.ok("hangup", "call", 1000) is None
    assert [c["CallState"] for c in alice.calls()] == [ENDED]
    assert alice.state() == "wrap"
    assert alice.rejected("hangup", "call", 1000)["ResponseDetail"] == "Call 1000 has already ended"
    assert alice.rejected("dial", "phone", "07700900456")["ResponseDetail"] == (
        "Dispose call 1000 before dialling"
    )


@pytest.mark.parametrize(
    ("code", "detail"),
    [
        ("FOO", "Unknown result code 'FOO'"),
        ("HKT", "Result code 'HKT' cannot be chosen by an agent"),
        ("BRIDGE_WARM", "Result code 'BRIDGE_WARM' cannot be chosen by an agent"),
        ("sale", "Unknown result code 'sale'"),
    ],
)
def test_dispose_rejects_unknown_and_system_codes_without_losing_the_call(
    simulator, alice, code, detail
):
    alice.ok("dial", "phone", "07700900123")
    alice.ok("hangup", "call", 1000)
    body = alice.rejected("dispose", "call", 1000, resultcode=code)
    assert body["ResponseDetail"] == detail
    assert body["ResponseCode"] == 6
    assert [c["CallId"] for c in alice.calls()] == [1000]
    assert alice.state() == "wrap"
    assert simulator.state()["dispositions"] == []


def test_dispose_without_a_result_code_is_rejected(alice):
    alice.ok("dial", "phone", "07700900123")
    assert alice.rejected("dispose", "call", 1000)["ResponseCode"] == 1
    assert len(alice.calls()) == 1


@pytest.mark.parametrize("before", ["ready", "not_ready"])
def test_dispose_ends_wrap_and_returns_the_agent_to_her_state_before_the_call(
    simulator, alice, before
):
    simulator.set_agent_state(101, before)
    alice.ok("dial", "phone", "07700900123")
    alice.ok("hangup", "call", 1000)
    assert alice.ok("dispose", "call", 1000, resultcode="SALE") is None
    assert alice.calls() == []
    assert alice.state() == before
    (disposition,) = simulator.state()["dispositions"]
    assert disposition["call_id"] == 1000
    assert disposition["result_code"] == "SALE"
    assert disposition["num_sales"] == 1


def test_dispose_hangs_up_a_connected_call_first(alice):
    alice.ok("dial", "phone", "07700900123")
    alice.ok("dispose", "call", 1000, resultcode="NOSALE")
    assert alice.calls() == []


def test_go_ready_is_refused_until_the_call_is_disposed(alice):
    alice.ok("dial", "phone", "07700900123")
    assert "on call 1000" in alice.rejected("goready")["ResponseDetail"]
    alice.ok("hangup", "call", 1000)
    assert alice.rejected("goready")["ResponseDetail"] == "Dispose the call before going ready"
    alice.ok("dispose", "call", 1000, resultcode="NOANSWER")
    alice.ok("goready")
    assert alice.state() == "ready"


def test_hold_only_a_connected_call_and_retrieve_only_a_held_one(alice):
    alice.ok("dial", "phone", "07700900123")
    assert alice.rejected("retrieve", "call", 1000)["ResponseDetail"] == "Call 1000 is not on hold"
    alice.ok("hold", "call", 1000)
    assert alice.calls()[0]["CallState"] == HELD
    assert alice.rejected("hold", "call", 1000)["ResponseDetail"] == "Call 1000 is already on hold"
    alice.ok("dial", "phone", "02079460017")
    body = alice.rejected("retrieve", "call", 1000)
    assert body["ResponseDetail"] == "Hold or hang up call 1001 before retrieving call 1000"
    alice.ok("hangup", "call", 1001)
    alice.ok("retrieve", "call", 1000)
    assert alice.calls()[0]["CallState"] == CONNECTED
    alice.ok("hangup", "call", 1000)
    assert alice.rejected("hold", "call", 1000)["ResponseDetail"] == "Call 1000 has ended"


def test_stop_and_start_recording_are_idempotent(alice):
    alice.ok("dial", "phone", "07700900123")
    for _ in range(2):
        alice.ok("stoprecord", "call", 1000)
        assert alice.calls()[0]["RecordingState"] == STOPPED
    for _ in range(2):
        alice.ok("startrecord", "call", 1000)
        assert alice.calls()[0]["RecordingState"] == RECORDING


def test_start_record_starts_a_call_that_was_not_recorded(simulator):
    carol = Agent(simulator, log_in(simulator, "carol.agent"), 103)  # no auto-record campaign
    assert carol.ok("dial", "phone", "07700900123")["RecordingState"] == NOT_RECORDED
    carol.ok("stoprecord", "call", 1000)
    assert carol.calls()[0]["RecordingState"] == NOT_RECORDED
    carol.ok("startrecord", "call", 1000)
    assert carol.calls()[0]["RecordingState"] == RECORDING


def test_lead_phones_carry_an_id_field_that_change_lead_accepts(alice):
    phones = alice.ok("leadphones", "lead", 4000456)
    assert [p["PhoneNumber"] for p in phones] == ["07700900456", "02079460456", "01632960456"]
    assert [p["RecordType"] for p in phones] == ["Mobile", "Work", "Home"]
    assert [p["RecordTypeId"] for p in phones] == [1, 3, 2]
    assert all(p["LeadId"] == 4000456 for p in phones)
    assert list(phones[0]) == ["LeadId", "LeadPhoneID", "PhoneNumber", "RecordType", "RecordTypeId"]
    assert alice.ok("leadphones", "lead", 2147483651)[0]["LeadId"] == 2147483651

    alice.ok("dial", "phone", "07700900123")
    alice.ok("changelead", "call", 1000, "leadphone", phones[1]["LeadPhoneID"])
    (call,) = alice.calls()
    assert call["LeadId"] == 4000456
    assert call["CustomerName"] == "Eli Evans"
    assert call["PhoneNumber"] == "07700900123"


@pytest.mark.parametrize("field", ["ID", None])
def test_lead_phone_id_field_name_is_configurable(simulator, alice, field):
    simulator.config(lead_phone_id_field=field)
    (phone,) = alice.ok("leadphones", "lead", 2147483651)
    documented = {"LeadId", "PhoneNumber", "RecordType", "RecordTypeId"}
    assert set(phone) == documented | ({field} if field else set())


def test_unknown_lead_and_lead_phone_are_rejected(alice):
    assert alice.rejected("leadphones", "lead", 55)["ResponseDetail"] == "Lead 55 not found"
    alice.ok("dial", "phone", "07700900123")
    body = alice.rejected("changelead", "call", 1000, "leadphone", 42)
    assert body["ResponseDetail"] == "Lead phone 42 not found"
    assert body["ResponseCode"] == 7


def test_create_new_lead_assigns_a_new_lead_with_that_phone_to_the_call(simulator, alice):
    alice.ok("dial", "phone", "07700900123")
    assert alice.ok("createnewlead", "call", 1000, "phone", "07700900555") is None
    (call,) = alice.calls()
    assert call["LeadId"] not in (4000123,)
    (phone,) = alice.ok("leadphones", "lead", call["LeadId"])
    assert phone["PhoneNumber"] == "07700900555"
    assert call["CustomerName"] == ""
    assert alice.rejected("createnewlead", "call", 1000, "phone", "x1")["ResponseCode"] == 1


def test_connect_calls_bridges_two_calls_with_notes_and_sales(simulator, alice):
    simulator.set_agent_state(101, "ready")
    alice.ok("dial", "phone", "07700900123")
    alice.ok("hold", "call", 1000)
    alice.ok("dial", "phone", "02079460017")
    data = alice.ok(
        "connectcalls",
        call1=1000,
        call2=1001,
        resultcode1="BRIDGE_WARM",
        resultcode2="TRANSFER",
        notes1="Warm transfer to billing",
        numsales2=2,
    )
    assert data is None
    assert alice.calls() == []
    assert alice.state() == "ready"
    world = simulator.state()
    (bridge,) = world["bridges"]
    assert bridge["call1"] == 1000
    assert bridge["call2"] == 1001
    assert bridge["result_code1"] == "BRIDGE_WARM"
    assert bridge["notes1"] == "Warm transfer to billing"
    assert bridge["notes2"] == ""
    assert bridge["num_sales2"] == 2
    assert [(d["call_id"], d["result_code"], d["via"]) for d in world["dispositions"]] == [
        (1000, "BRIDGE_WARM", "connectcalls"),
        (1001, "TRANSFER", "connectcalls"),
    ]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"call2": 1001, "resultcode1": "BRIDGE", "resultcode2": "BRIDGE"}, "call1 is required"),
        (
            {"call1": 1000, "call2": 1000, "resultcode1": "BRIDGE", "resultcode2": "BRIDGE"},
            "call1 and call2 must be two different calls",
        ),
        (
            {"call1": 1000, "call2": 1001, "resultcode1": "FOO", "resultcode2": "BRIDGE"},
            "Unknown result code 'FOO'",
        ),
        (
            {"call1": 1000, "call2": 1001, "resultcode1": "BRIDGE"},
            "resultcode2 is required",
        ),
        (
            {"call1": 1000, "call2": 1001, "resultcode1": "BRIDGE", "resultcode2": "BRIDGE",
             "numsales1": "lots"},
            "Invalid numsales1 'lots'",
        ),
    ],
)  # fmt: skip
def test_connect_calls_rejects_bad_parameters_and_keeps_both_calls(alice, params, detail):
    alice.ok("dial", "phone", "07700900123")
    alice.ok("hold", "call", 1000)
    alice.ok("dial", "phone", "02079460017")
    assert alice.rejected("connectcalls", **params)["ResponseDetail"] == detail
    assert [c["CallId"] for c in alice.calls()] == [1000, 1001]


def test_an_action_on_another_agents_call_is_rejected(alice, bob):
    alice.ok("dial", "phone", "07700900123")
    for method in ("hangup", "hold", "stoprecord"):
        body = bob.rejected(method, "call", 1000)
        assert body["ResponseDetail"] == "Call 1000 does not belong to user 102"
        assert body["ResponseCode"] == 3
    assert bob.rejected("dispose", "call", 1000, resultcode="SALE")["ResponseCode"] == 3
    assert alice.calls()[0]["CallState"] == CONNECTED
    assert bob.calls() == []


def test_lookups_return_the_documented_entities(alice):
    users = alice.ok("users")
    assert {"FullName": "Alice Archer", "ID": 101} in users
    assert all(list(u) == ["FullName", "ID"] for u in users)
    assert len(users) > 3

    codes = {c["Code"]: c for c in alice.ok("resultcodes")}
    assert set(codes) >= {
        "SALE", "NOSALE", "CALLBACK", "NOANSWER", "WRONGNUM", "TRANSFER",
        "ABANDON", "BRIDGE", "BRIDGE_WARM", "CANCEL", "HKT", "HKT_AGENT",
    }  # fmt: skip
    assert codes["SALE"]["IsSuccess"] is True
    assert codes["SALE"]["Sales"] == 1
    assert codes["CALLBACK"]["IsCallback"] is True
    assert codes["HKT"]["IsAgentViewable"] is False
    assert codes["HKT"]["IsSystemResultCode"] is True
    assert set(codes["SALE"]) == {
        "Code", "Description", "IsAgentViewable", "IsCallAgain", "IsCallback", "IsSuccess",
        "IsSystemResultCode", "IsTransfer", "ResultCodeID", "Sales", "StatusID", "SuccessType",
    }  # fmt: skip

    queues = alice.ok("acdqueues")
    assert len(queues) == 3
    assert set(queues[0]) >= {
        "AbandonThreshold", "AcceptableQueueTime", "AcdIcon", "AcdName", "Active",
        "DefaultTimeout", "DefaultTimeoutIvr", "ID", "SessionStats", "SkipIndex", "SnapshotStats",
        "TenMinuteOffers", "TenMinuteOffersVirtualQueue", "UserAddress", "UserName", "ZipTone",
        "ZipToneBeep", "ZipToneWav",
    }  # fmt: skip


CAMPAIGN_FIELDS = [  # every field the vendor text lists for Campaign
    "Active", "AlwaysRun", "AutoRecord", "BlackoutDates", "BlackoutDateses", "CalculatedLines",
    "CallerID", "CallsPlacedThisMinute", "CampaignID", "CampaignIcon", "CampaignName", "Cps",
    "DefaultListID", "DefaultPhoneType", "Description", "DropQueue", "EndLine",
    "EstimatedRecordCount", "FirstCreated", "InitialPacing", "IvrSessions", "LastFetch",
    "LastModified", "LastPacingAdjust", "Leads", "LeadsInProgress", "LinesToReturn", "Lists",
    "ListsForStats", "LiveStats", "LiveStatsTemp", "MOTD", "MaxCallCap", "NumToCall", "Pacing",
    "PlacedPredictiveCallsLock", "PlacingInterval", "PreviewQueue", "ReadyUsers", "ResultSessions",
    "Schedule", "SchedulePlanID", "Schedules", "SchedulesUI", "SessionID", "SessionStats",
    "SoftCap", "StartLine", "Status", "TargetDropPercent", "TeleParamPlanID", "TenantID", "Type",
    "UncalledLeads", "UseAutoPacing", "UseGlobalBlackoutDates", "UserAddress", "UserName",
    "ZipTone", "ZipToneBeep", "ZipToneWav",
]  # fmt: skip


def test_campaigns_carry_every_documented_field_with_nested_values(alice):
    alice.ok("goready")
    campaigns = alice.ok("campaigns")
    assert len(campaigns) >= 3
    assert any(c["Active"] is False for c in campaigns)
    for campaign in campaigns:
        assert set(CAMPAIGN_FIELDS) <= set(campaign)
    first = campaigns[0]
    assert first["BlackoutDateses"][0]["Description"] == "Christmas Day"
    assert first["ReadyUsers"] == [101]
    assert first["LiveStatsTemp"] is None
    assert isinstance(first["Lists"], list)
    assert isinstance(first["LiveStats"], dict)


def test_campaigns_in_xml_render_arrays_objects_and_nil(alice):
    alice.ok("goready")
    root = parse_xml(alice.get("campaigns", as_json=False).content)
    data = root.find(f"{T}Data")
    assert data.get(XSI_TYPE) == "ArrayOfCampaign"
    campaign = data.find(f"{T}Campaign")
    names = [c.tag.removeprefix(T) for c in campaign]
    assert names == sorted(names)
    assert set(CAMPAIGN_FIELDS) <= set(names)
    ready = campaign.find(f"{T}ReadyUsers")
    assert [e.text for e in ready.findall(f"{{{ARRAYS_NS}}}int")] == ["101"]
    assert campaign.find(f"{T}LiveStatsTemp").get(NIL) == "true"
    blackout = campaign.find(f"{T}BlackoutDateses/{T}BlackoutDates/{T}Date")
    assert XML_DATE.match(blackout.text)


# ---------------------------------------------------------------------------------------------
# Control endpoints


def test_offer_brings_an_inbound_call_to_a_ready_agent_only(simulator, alice):
    with pytest.raises(SimulatorControlError) as refused:
        simulator.offer(101)
    assert refused.value.status == 409
    forced = simulator.offer(101, force=True, phone="07700900789")
    assert forced["CallStatus"] == INBOUND
    assert forced["CustomerName"] == "Farah Fox"
    assert alice.calls()[0]["CallId"] == forced["CallId"] == 1000


def test_offer_to_a_ready_agent_and_the_customer_hangs_up(simulator, alice):
    alice.ok("goready")
    call = simulator.offer(101, lead_id=4000456)
    assert call["CallState"] == CONNECTED
    assert alice.state() == "on_call"
    simulator.customer_hangup(call["CallId"])
    assert alice.calls()[0]["CallState"] == ENDED
    assert alice.state() == "wrap"
    alice.ok("dispose", "call", call["CallId"], resultcode="CALLBACK")
    assert alice.state() == "ready"


def test_reset_restarts_call_ids_at_1000_and_forgets_tokens(simulator, alice):
    alice.ok("dial", "phone", "07700900123")
    alice.ok("dispose", "call", 1000, resultcode="SALE")
    assert alice.ok("dial", "phone", "07700900123")["CallId"] == 1001
    simulator.config(key_case="camel")
    simulator.fault("drop")
    simulator.reset()
    assert simulator.requests() == []
    refused = alice.get("getcalls")  # not dropped: the fault is gone too
    assert refused.status_code == 401
    assert "ResponseDetail" in refused.json()  # PascalCase again
    alice.token = log_in(simulator)
    assert alice.ok("dial", "phone", "07700900123")["CallId"] == 1000
    assert simulator.state()["dispositions"] == []


def test_request_log_shows_exactly_what_was_sent(simulator, alice):
    alice.ok("dial", "phone", "07700900123")
    alice.ok("hold", "call", 1000)
    alice.ok("dial", "phone", "02079460017")
    simulator.clear_requests()
    alice.ok(
        "ConnectCalls", call1=1000, call2=1001, resultcode1="BRIDGE_WARM",
        resultcode2="TRANSFER", notes1="to billing & back",
    )  # fmt: skip
    (entry,) = simulator.requests()
    assert entry["method"] == "GET"
    assert entry["path"] == "/webservices/services/telephony/ConnectCalls/user/101"
    assert "notes1=to+billing+%26+back" in entry["query"]
    assert entry["params"]["notes1"] == ["to billing & back"]
    assert entry["params"]["call1"] == ["1000"]
    assert entry["headers"]["Cookie"] == f"TokenKey={alice.token}"
    assert entry["headers"]["Content-Type"] == "application/json"
    assert entry["fault"] is None
    assert simulator.requests("connectcalls") == [entry]
    assert simulator.requests("getcalls") == []


def test_control_endpoints_validate_their_input(simulator):
    with pytest.raises(SimulatorControlError, match="json_dates"):
        simulator.config(json_dates="rfc")
    with pytest.raises(SimulatorControlError, match="unknown config key"):
        simulator.config(colour="blue")
    with pytest.raises(SimulatorControlError, match="kind"):
        simulator.fault("meteor")
    with pytest.raises(SimulatorControlError) as missing:
        simulator.offer(999)
    assert missing.value.status == 404


# ---------------------------------------------------------------------------------------------
# Faults


def test_latency_delays_the_answer(simulator, alice):
    simulator.fault("latency", delay=0.4, path_contains="GetCalls")
    started = time.monotonic()
    assert alice.calls() == []
    assert time.monotonic() - started >= 0.35
    started = time.monotonic()
    alice.calls()
    assert time.monotonic() - started < 0.35  # consumed once
    assert [r["fault"] for r in simulator.requests("getcalls")] == ["latency", None]


def test_status_fault_answers_an_iis_page_without_applying_the_action(simulator, alice):
    simulator.fault("status", status=503, path_contains="dial")
    response = alice.get("dial", "phone", "07700900123")
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Service Unavailable" in response.text
    assert alice.calls() == []


def test_status_fault_can_apply_the_action_first(simulator, alice):
    simulator.fault("status", status=500, path_contains="dial", apply=True)
    response = alice.get("dial", "phone", "07700900123")
    assert response.status_code == 500
    assert "Server Error" in response.text
    assert [c["CallId"] for c in alice.calls()] == [1000]


def test_drop_closes_the_socket_without_a_response_after_applying_the_action(simulator, alice):
    simulator.fault("drop", path_contains="dial")
    received = raw_exchange(
        simulator,
        "/webservices/services/telephony/dial/user/101/phone/07700900123",
        {"Cookie": f"TokenKey={alice.token}"},
    )
    assert received == b""
    assert [c["CallId"] for c in alice.calls()] == [1000]
    assert simulator.requests("dial")[0]["fault"] == "drop"


def test_drop_without_apply_leaves_the_world_alone(simulator, alice):
    simulator.fault("drop", path_contains="dial", apply=False)
    with pytest.raises(requests.ConnectionError):
        alice.get("dial", "phone", "07700900123")
    assert alice.calls() == []


def test_truncate_promises_the_full_length_and_sends_half(simulator, alice):
    simulator.fault("truncate", path_contains="getcalls")
    received = raw_exchange(
        simulator,
        "/webservices/services/telephony/getcalls/user/101",
        {"Cookie": f"TokenKey={alice.token}"},
    )
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert 0 < len(body) < length
    assert body.startswith(b"<CallActionResponse")


def test_garbage_is_neither_xml_nor_json(simulator, alice):
    simulator.fault("garbage", count=2)
    as_json = alice.get("getcalls")
    assert as_json.status_code == 200
    with pytest.raises(ValueError, match=r"Expecting value|codec can't decode"):
        json.loads(as_json.content)
    as_xml = alice.get("getcalls", as_json=False)
    with pytest.raises(ET.ParseError):
        parse_xml(as_xml.content)
    assert alice.calls() == []


def test_xml_bomb_is_an_entity_expansion_document(simulator, alice):
    simulator.fault("xml_bomb", path_contains="getcalls")
    response = alice.get("getcalls")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert b"<!DOCTYPE" in response.content
    assert b'<!ENTITY lol9 "&lol8;&lol8;' in response.content
    assert len(response.content) < 5000  # the expansion is the reader's problem


def test_expired_token_fault_expires_the_presented_token_for_real(simulator, alice):
    simulator.fault("expired_token", path_contains="goready")
    assert alice.get("goready").status_code == 401
    assert alice.state() == "not_ready"
    assert alice.get("getcalls").status_code == 401  # still expired: log in again
    alice.token = log_in(simulator)
    alice.ok("goready")


def test_faults_reach_the_token_service_and_are_consumed_per_matching_request(simulator):
    simulator.fault("status", status=503, path_contains="apitoken", count=2)
    url = token_url(simulator, "alice.agent")
    headers = {"Authorization": b64("alice-maxcontact-pw")}
    statuses = [requests.get(url, headers=headers, timeout=5).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert simulator.state()["tokens"] == 1
    simulator.fault("drop")
    simulator.clear_faults()
    assert requests.get(url, headers=headers, timeout=5).status_code == 200


# ---------------------------------------------------------------------------------------------
# The process


def test_access_log_names_method_path_and_status_but_no_query_or_secrets():
    process, simulator = start_simulator(quiet=False)
    try:
        token = log_in(simulator)
        agent = Agent(simulator, token, 101)
        agent.rejected("dispose", "call", 1000, resultcode="SALE")
    finally:
        stderr = stop_simulator(process)
    assert process.returncode == 0
    assert "GET /webservices/services/telephony/dispose/user/101/call/1000 200" in stderr
    assert "GET /webservices/services/apitoken/login/alice.agent 200" in stderr
    assert "resultcode" not in stderr
    assert token not in stderr
    assert b64("alice-maxcontact-pw") not in stderr


def test_the_process_exits_cleanly_on_sigint():
    process, simulator = start_simulator()
    simulator.reset()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=5)
    assert process.returncode == 0
    stop_simulator(process)


def test_demo_mode_offers_calls_that_customers_end():
    process, simulator = start_simulator(
        "--demo", "--offer-every", "0.2-0.4", "--talk-for", "0.5-0.8"
    )
    try:
        agent = Agent(simulator, log_in(simulator), 101)
        assert simulator.state()["demo"] is True
        agent.ok("goready")
        (offered,) = wait_for(agent.calls, timeout=5)
        assert offered["CallStatus"] == INBOUND
        assert offered["CallId"] == 1000
        ended = wait_for(lambda: [c for c in agent.calls() if c["CallState"] == ENDED], timeout=8)
        assert ended[0]["CallId"] == 1000
        assert agent.state() == "wrap"
    finally:
        stop_simulator(process)


def test_latency_and_request_counts_for_benchmarks(simulator):
    alice = Agent(simulator, log_in(simulator), 101)
    bob = Agent(simulator, alice.token, 102)  # tenant-scoped tokens by default
    simulator.config(latency_ms=60)
    started = time.monotonic()
    alice.ok("getcalls")
    assert time.monotonic() - started >= 0.06
    simulator.config(latency_ms=0)
    bob.ok("getcalls")
    bob.ok("getcalls")
    counts = simulator.counts()
    assert counts["by_method"] == {"login": 1, "getcalls": 3}
    assert counts["by_user"]["getcalls"] == {"101": 1, "102": 2}
    assert counts["total"] == 4
    simulator.clear_counts()
    assert simulator.counts()["total"] == 0
    with pytest.raises(SimulatorControlError):
        simulator.config(latency_ms=-1)
