"""The wire layer reads what a .NET MaxContact can send, and refuses what it cannot read."""

import json
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from telephony import wire
from telephony.errors import AuthenticationFailed, MalformedResponse

OPTIONS = wire.WireOptions()
NS = (
    'xmlns="http://schemas.datacontract.org/2004/07/MaxContact.Telephony" '
    'xmlns:i="http://www.w3.org/2001/XMLSchema-instance"'
)

GETCALLS_XML = f"""<?xml version="1.0" encoding="utf-8"?>
<CallActionResponse {NS}>
  <Data i:type="ArrayOfCall">
    <Call>
      <CallId>1000</CallId>
      <CallStartTime>2026-11-27T10:15:00.1234567+01:00</CallStartTime>
      <CallState>2</CallState>
      <CallStatus>1</CallStatus>
      <CustomerName>Dana Doe</CustomerName>
      <CustomerName2 i:nil="true"/>
      <LeadId>4294967301</LeadId>
      <PhoneNumber>07700900123</PhoneNumber>
      <RecordingState>1</RecordingState>
      <SomethingNew><Nested>ignored</Nested></SomethingNew>
    </Call>
    <Call>
      <CallId>1001</CallId>
      <CallStartTime>2026-11-27T10:16:00</CallStartTime>
      <CallState>3</CallState>
      <CallStatus i:nil="true"/>
      <CustomerName/>
      <CustomerName2/>
      <PhoneNumber>+447700900456</PhoneNumber>
      <RecordingState>2</RecordingState>
    </Call>
  </Data>
  <ResponseCode>0</ResponseCode>
  <ResponseDetail/>
  <Success>true</Success>
</CallActionResponse>""".encode()


def test_datacontract_xml_list_of_calls_is_read_with_nil_and_extra_fields():
    envelope = wire.parse_envelope(GETCALLS_XML)
    assert envelope.success is True
    assert envelope.response_code == 0
    first, second = wire.calls(envelope.data, OPTIONS)
    assert first.call_id == 1000
    assert first.start_time == datetime(2026, 11, 27, 9, 15, 0, 123456, tzinfo=UTC)
    assert first.state == 2 and first.status == 1 and first.recording_state == 1
    assert first.customer_name == "Dana Doe"
    assert first.customer_name2 == ""
    assert first.lead_id == 4294967301  # lead ids are long
    assert second.status is None
    assert second.lead_id is None
    assert second.phone_number == "+447700900456"


def test_naive_dates_take_the_tenants_zone():
    options = wire.WireOptions(naive_time_zone=ZoneInfo("Europe/London"))
    second = wire.calls(wire.parse_envelope(GETCALLS_XML).data, options)[1]
    assert second.start_time == datetime(2026, 11, 27, 10, 16, tzinfo=ZoneInfo("Europe/London"))


def test_xml_data_holding_one_object_is_read_as_that_object():
    body = f"""<CallActionResponse {NS}><Data i:type="Call"><CallId>1002</CallId>
      <PhoneNumber>0123</PhoneNumber></Data><ResponseCode>0</ResponseCode>
      <ResponseDetail>Dialling</ResponseDetail><Success>true</Success></CallActionResponse>"""
    envelope = wire.parse_envelope(body.encode())
    assert envelope.response_detail == "Dialling"
    (only,) = wire.calls(envelope.data, OPTIONS)
    assert only.call_id == 1002 and only.start_time is None and only.state is None


@pytest.mark.parametrize(
    "data", ['<Data i:nil="true"/>', '<Data i:type="ArrayOfCall"/>', "<Data/>", ""]
)
def test_xml_data_that_is_nil_empty_or_absent_means_no_calls(data):
    body = f"<CallActionResponse {NS}>{data}<Success>true</Success></CallActionResponse>"
    assert wire.calls(wire.parse_envelope(body.encode()).data, OPTIONS) == []


def test_xml_with_prefixed_namespaces_and_odd_case_is_read():
    body = """<a:callactionresponse xmlns:a="urn:x" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
      <a:data><a:agentNameIDPair><a:fullName>Bob Baker</a:fullName><a:id>102</a:id>
      </a:agentNameIDPair></a:data><a:success>TRUE</a:success></a:callactionresponse>"""
    users = wire.users(wire.parse_envelope(body.encode()).data)
    assert [(u.id, u.full_name) for u in users] == [(102, "Bob Baker")]


def test_json_with_wcf_dates_and_mixed_case_keys():
    body = rb"""{"success":true,"responseCode":0,"responseDetail":null,"data":[
      {"callId":1000,"CallStartTime":"\/Date(1764238500123+0100)\/","callstate":2,
       "CallStatus":1,"CustomerName":"Dana","PhoneNumber":"07700900123","RecordingState":1,
       "__type":"Call:#MaxContact"}]}"""
    (call,) = wire.calls(wire.parse_envelope(body).data, OPTIONS)
    assert call.call_id == 1000
    assert call.start_time == datetime.fromtimestamp(1764238500.123, tz=UTC)
    assert call.start_time.utcoffset() == timedelta(hours=1)
    assert call.customer_name2 == ""


def test_json_with_iso_dates_and_data_as_a_single_object():
    body = b"""{"Success":true,"Data":{"CallId":"1003","CallStartTime":"2026-11-27T10:15:00Z",
      "PhoneNumber":"0123"},"ResponseCode":0,"ResponseDetail":""}"""
    (call,) = wire.calls(wire.parse_envelope(body).data, OPTIONS)
    assert call.call_id == 1003
    assert call.start_time == datetime(2026, 11, 27, 10, 15, tzinfo=UTC)


def test_json_wrapped_in_d_is_unwrapped():
    body = b'{"d":{"Success":false,"Data":null,"ResponseCode":7,"ResponseDetail":"No"}}'
    envelope = wire.parse_envelope(body)
    assert (envelope.success, envelope.response_code, envelope.response_detail) == (
        False,
        7,
        "No",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(0)/", datetime(1970, 1, 1, tzinfo=UTC)),
        (r"\/Date(-1000+0000)\/", datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("/Date(1764238500000-0500)/", datetime(2025, 11, 27, 10, 15, tzinfo=UTC)),
        (
            "2026-11-27T10:15:00.1234567-05:00",
            datetime(2026, 11, 27, 10, 15, 0, 123456, tzinfo=timezone(timedelta(hours=-5))),
        ),
        ("", None),
        ("not a date", None),
        (None, None),
    ],
)
def test_dates_in_both_json_styles(text, expected):
    assert wire.to_datetime(text) == expected


def test_lead_phone_id_comes_from_the_configured_fields():
    body = b"""{"Success":true,"Data":[{"LeadId":5,"PhoneNumber":"0123","RecordType":"Mobile",
      "RecordTypeId":2,"LeadPhoneID":77},{"LeadId":5,"PhoneNumber":"0456","RecordType":"Home",
      "RecordTypeId":1,"ID":78},{"LeadId":5,"PhoneNumber":"0789","RecordType":"Work"}]}"""
    data = wire.parse_envelope(body).data
    phones = wire.lead_phones(data, OPTIONS)
    assert [p.lead_phone_id for p in phones] == [77, 78, None]
    only_id = wire.lead_phones(data, wire.WireOptions(lead_phone_id_fields=("ID",)))
    assert [p.lead_phone_id for p in only_id] == [None, 78, None]
    assert phones[0].record_type_id == 2 and phones[2].record_type_id is None


def test_campaign_with_the_documented_oddities_is_read_leniently():
    body = f"""<CallActionResponse {NS}><Data i:type="ArrayOfCampaign"><Campaign>
      <Active>true</Active><AutoRecord>false</AutoRecord><BlackoutDates i:nil="true"/>
      <BlackoutDateses/><CampaignID>3</CampaignID><CampaignName>Renewals</CampaignName>
      <Description>Q4</Description><Leads><Count>5</Count></Leads><Leads i:nil="true"/>
      <LiveStats><Calls>4</Calls></LiveStats><MOTD>Be kind</MOTD><Status>1</Status>
      <Type>2</Type><CallerID>0161</CallerID></Campaign></Data>
      <Success>true</Success></CallActionResponse>"""
    (campaign,) = wire.campaigns(wire.parse_envelope(body.encode()).data)
    assert campaign.campaign_id == 3 and campaign.name == "Renewals"
    assert campaign.active is True and campaign.auto_record is False
    assert campaign.message_of_the_day == "Be kind" and campaign.caller_id == "0161"


def test_result_codes_keep_their_flags_and_drop_codeless_entries():
    body = b"""{"Success":true,"Data":[
      {"Code":"SALE","Description":"Sale","IsAgentViewable":true,"IsSuccess":true,"Sales":1,
       "ResultCodeID":1},
      {"Code":"HKT","IsAgentViewable":false,"IsSystemResultCode":true},
      {"Code":"","Description":"broken"}]}"""
    sale, hkt = wire.result_codes(wire.parse_envelope(body).data)
    assert (sale.code, sale.is_agent_viewable, sale.is_success, sale.sales) == (
        "SALE",
        True,
        True,
        1,
    )
    assert (hkt.is_agent_viewable, hkt.is_system, hkt.result_code_id) == (False, True, None)


def test_acd_queues_and_users_from_json():
    queues = wire.acd_queues([{"ID": 1, "AcdName": "Sales", "Active": "true"}])
    assert (queues[0].id, queues[0].name, queues[0].active) == (1, "Sales", True)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body>Service Unavailable</body></html",
        b"Runtime Error",
        b'{"Success": tru',
        b"<CallActionResponse><Data/></CallActionResponse>",  # no Success
        b'{"Data": []}',
        b'{"Success": "maybe"}',
        b"[1, 2]",
    ],
)
def test_unreadable_bodies_are_malformed_responses(body):
    with pytest.raises(MalformedResponse):
        wire.parse_envelope(body)


def test_an_xml_entity_bomb_is_refused_before_expansion():
    bomb = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
      <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
      <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
      <CallActionResponse><Success>&lol3;</Success></CallActionResponse>"""
    with pytest.raises(MalformedResponse, match="refuse"):
        wire.parse_envelope(bomb)


def test_an_external_entity_is_refused():
    xxe = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
      <CallActionResponse><ResponseDetail>&x;</ResponseDetail><Success>false</Success>
      </CallActionResponse>"""
    with pytest.raises(MalformedResponse):
        wire.parse_envelope(xxe)


def test_a_call_without_a_call_id_is_malformed_not_dropped():
    with pytest.raises(MalformedResponse, match="CallId"):
        wire.calls([{"PhoneNumber": "0123"}], OPTIONS)


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        b'{"TokenKey":"abc123"}',
        b'{"tokenkey":"abc123","Expires":"2026-11-27T20:00:00Z"}',
        b'{"Success":true,"Data":{"TokenKey":"abc123"},"ResponseCode":0}',
        b"<ApiTokenResponse xmlns='urn:x'><TokenKey>abc123</TokenKey></ApiTokenResponse>",
        b"<CallActionResponse><Data><TokenKey>abc123</TokenKey></Data>"
        b"<Success>true</Success></CallActionResponse>",
    ],
)
def test_token_reply_in_every_shape(body):
    token = wire.token(body, obtained_at=NOW, options=OPTIONS)
    assert token.key == "abc123"
    assert token.obtained_at == NOW
    assert "abc123" not in repr(token)


def test_token_expiry_is_read_from_configured_field():
    token = wire.token(
        b'{"TokenKey":"k","ExpiresOn":"2026-11-27T20:00:00Z"}', obtained_at=NOW, options=OPTIONS
    )
    assert token.expires_at == datetime(2026, 11, 27, 20, tzinfo=UTC)


def test_token_reply_without_a_token_is_malformed():
    with pytest.raises(MalformedResponse, match="TokenKey"):
        wire.token(b'{"Something":"else"}', obtained_at=NOW, options=OPTIONS)


def test_token_reply_saying_no_is_an_authentication_failure():
    body = b'{"Success":false,"ResponseDetail":"Invalid username or password"}'
    with pytest.raises(AuthenticationFailed, match="Invalid username or password"):
        wire.token(body, obtained_at=NOW, options=OPTIONS)


@pytest.mark.parametrize(
    "body",
    [
        b'{"Success":true,"ResponseCode":"' + b"9" * 5000 + b'"}',
        b'{"Success":true,"Data":[{"CallId":"' + b"1" * 5000 + b'"}]}',
        b'<?xml version="1.0" encoding="bogus"?><CallActionResponse/>',
        b'<?xml version="1.0" encoding="shift_jis"?><CallActionResponse/>',
        b"<a>" * 100_000 + b"</a>" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"Success":true,"Data":[[1,2],[3]]}',
        b'{"Success":true,"Data":12345}',
        b"\xff\xfe<\x00a\x00/\x00>\x00",
    ],
)
def test_hostile_bodies_are_malformed_responses_never_crashes(body):
    try:
        envelope = wire.parse_envelope(body)
        wire.calls(envelope.data, OPTIONS)
    except MalformedResponse:
        pass


@pytest.mark.parametrize(
    "date",
    [
        "/Date(99999999999999999)/",
        "/Date(0+9999)/",
        "/Date(253402300799000+0100)/",
        "/Date(" + "9" * 400 + ")/",
        "9999-99-99T00:00:00",
        "/Date(١٢٣)/",
    ],
)
def test_out_of_range_dates_are_unknown_not_errors(date):
    body = json.dumps({"Success": True, "Data": [{"CallId": 1, "CallStartTime": date}]})
    (call,) = wire.calls(wire.parse_envelope(body.encode()).data, OPTIONS)
    assert call.start_time is None


def test_non_ascii_digits_are_not_numbers():
    assert wire.to_int("١٢٣") is None
    assert wire.to_int(2**70) is None
    assert wire.to_int("4294967301") == 4294967301


def test_lone_surrogates_are_replaced():
    body = b'{"Success":true,"Data":[{"CallId":1,"CustomerName":"A\\ud800B"}]}'
    (call,) = wire.calls(wire.parse_envelope(body).data, OPTIONS)
    call.customer_name.encode("utf-8")  # would raise on a surrogate
    assert call.customer_name.startswith("A") and call.customer_name.endswith("B")


def test_pretty_printed_empty_data_means_no_calls():
    body = (
        f"<CallActionResponse {NS}><Data>\n   </Data><Success>true</Success></CallActionResponse>"
    )
    assert wire.calls(wire.parse_envelope(body.encode()).data, OPTIONS) == []


@pytest.mark.parametrize("key", ["tök€n", "a b", "a;b", 'a"b', "a\r\nX-Evil: 1", ""])
def test_a_token_a_cookie_cannot_carry_is_refused(key):
    body = json.dumps({"TokenKey": key}).encode()
    with pytest.raises(MalformedResponse):
        wire.token(body, obtained_at=NOW, options=OPTIONS)


def test_an_expiry_in_the_past_is_not_a_deadline():
    body = b'{"TokenKey":"k","Expires":"0001-01-01T00:00:00"}'
    assert wire.token(body, obtained_at=NOW, options=OPTIONS).expires_at is None
