"""The bytes a MaxContact tenant answers with: .NET DataContract XML and WCF JSON.

Values are built as a small tree (`Obj`, `Arr`, `When`, primitives) and then written either as
XML the way DataContractSerializer does (members in ordinal order, `i:nil`, `i:type` on members
declared `object`, arrays as `ArrayOfX`, primitive arrays in the Serialization/Arrays namespace)
or as JSON the way DataContractJsonSerializer does (`"\\/Date(ms+0000)\\/"`, every `/` escaped,
`__type` on an object held in a member declared `object`). Shared by no other code: the client
has its own parser, and the two must agree only through the vendor text.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from .world import (
    AcdQueue,
    AgentState,
    Call,
    CallState,
    Campaign,
    LeadPhone,
    ResultCode,
    World,
)

TELEPHONY_NS = "http://schemas.datacontract.org/2004/07/MaxContact.Telephony.Api"
TELEPHONY_CLR_NS = "MaxContact.Telephony.Api"
TOKEN_NS = "http://schemas.datacontract.org/2004/07/MaxContact.LeadManagement.Api"  # noqa: S105 (an XML namespace)
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ARRAYS_NS = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
PRIMITIVE_ITEMS = frozenset({"int", "long", "string", "boolean"})


@dataclasses.dataclass(frozen=True)
class When:
    epoch: float


@dataclasses.dataclass(frozen=True)
class Obj:
    type_name: str
    fields: Mapping[str, Value]


@dataclasses.dataclass(frozen=True)
class Arr:
    item_type: str  # an entity type ("Call") or a primitive ("int", "long", "string")
    items: Sequence[Value]


Value: TypeAlias = bool | int | str | When | Obj | Arr | None


@dataclasses.dataclass(frozen=True)
class WireStyle:
    json_dates: str = "msajax"  # or "iso"
    key_case: str = "pascal"  # or "camel"
    json_type_hints: bool = True
    call_lead_id: bool = True
    lead_phone_id_field: str | None = "LeadPhoneID"


# ---------------------------------------------------------------------------------------------
# Dates


def iso7(epoch: float) -> str:
    """2026-11-27T10:15:00.1234567+00:00, as DataContractSerializer writes a DateTime."""
    ticks = round(epoch * 10_000_000)
    seconds, fraction = divmod(ticks, 10_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{fraction:07d}+00:00"


def msajax(epoch: float) -> str:
    """/Date(1764238500123+0000)/ (the slashes are escaped when the document is written)."""
    return f"/Date({int(epoch * 1000)}+0000)/"


# ---------------------------------------------------------------------------------------------
# XML

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    value = _XML_INVALID.sub("", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _scalar_xml(value: bool | int | str | When) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, When):
        return iso7(value.epoch)
    if isinstance(value, int):
        return str(value)
    return _text(value)


def _xml_member(out: list[str], name: str, value: Value, depth: int, typed: bool) -> None:
    """One member element; `typed` when the member is declared `object` (it gets i:type)."""
    if value is None:
        out.append(f'<{name} i:nil="true"/>')
        return
    if isinstance(value, Obj):
        attrs = f' i:type="{value.type_name}"' if typed else ""
        if not value.fields:
            out.append(f"<{name}{attrs}/>")
            return
        out.append(f"<{name}{attrs}>")
        for key in sorted(value.fields):
            _xml_member(out, key, value.fields[key], depth + 1, typed=False)
        out.append(f"</{name}>")
        return
    if isinstance(value, Arr):
        primitive = value.item_type in PRIMITIVE_ITEMS
        prefix = f"d{depth + 1}p1"
        attrs = f' xmlns:{prefix}="{ARRAYS_NS}"' if primitive else ""
        if typed:
            array_type = f"ArrayOf{value.item_type}"
            attrs += f' i:type="{prefix}:{array_type}"' if primitive else f' i:type="{array_type}"'
        if not value.items:
            out.append(f"<{name}{attrs}/>")
            return
        out.append(f"<{name}{attrs}>")
        item_name = f"{prefix}:{value.item_type}" if primitive else value.item_type
        for item in value.items:
            _xml_member(out, item_name, item, depth + 1, typed=False)
        out.append(f"</{name}>")
        return
    text = _scalar_xml(value)
    out.append(f"<{name}>{text}</{name}>" if text else f"<{name}/>")


def xml_document(root: str, namespace: str, fields: Mapping[str, Value]) -> bytes:
    out = [f'<{root} xmlns="{namespace}" xmlns:i="{XSI_NS}">']
    for key in sorted(fields):
        _xml_member(out, key, fields[key], depth=2, typed=key == "Data")
    out.append(f"</{root}>")
    return "".join(out).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# JSON

JsonValue: TypeAlias = bool | int | str | list["JsonValue"] | dict[str, "JsonValue"] | None


def _key(name: str, style: WireStyle) -> str:
    if style.key_case == "camel" and name[:1].isupper():
        return name[0].lower() + name[1:]
    return name


def _json(value: Value, style: WireStyle, typed: bool) -> JsonValue:
    if isinstance(value, When):
        return msajax(value.epoch) if style.json_dates == "msajax" else iso7(value.epoch)
    if isinstance(value, Obj):
        out: dict[str, JsonValue] = {}
        if typed and style.json_type_hints:
            # DataContractJsonSerializer names the runtime type of a member declared `object`.
            out["__type"] = f"{value.type_name}:#{TELEPHONY_CLR_NS}"
        for key in sorted(value.fields):
            out[_key(key, style)] = _json(value.fields[key], style, typed=False)
        return out
    if isinstance(value, Arr):
        return [_json(item, style, typed=False) for item in value.items]
    return value


def json_document(fields: Mapping[str, Value], style: WireStyle) -> bytes:
    doc = {_key(k, style): _json(fields[k], style, typed=k == "Data") for k in sorted(fields)}
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    if style.json_dates == "msajax":
        # WCF's serializer escapes every solidus; "/" only ever occurs inside JSON strings.
        text = text.replace("/", "\\/")
    return text.encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Documents


def call_action_response(success: bool, data: Value, code: int, detail: str) -> dict[str, Value]:
    return {"Data": data, "ResponseCode": code, "ResponseDetail": detail, "Success": success}


def render(
    fields: Mapping[str, Value],
    *,
    as_json: bool,
    style: WireStyle,
    root: str = "CallActionResponse",
    namespace: str = TELEPHONY_NS,
) -> tuple[str, bytes]:
    """(Content-Type, body) of a document in the format the request asked for."""
    if as_json:
        return "application/json; charset=utf-8", json_document(fields, style)
    return "application/xml; charset=utf-8", xml_document(root, namespace, fields)


# ---------------------------------------------------------------------------------------------
# Entities (field names exactly as the vendor text lists them, plus the documented extras)


def call_obj(world: World, call: Call, style: WireStyle) -> Obj:
    lead = world.leads[call.lead_id]
    fields: dict[str, Value] = {
        "CallId": call.call_id,
        "CallStartTime": When(call.start_time),
        "CallState": int(call.state),
        "CallStatus": int(call.status),
        "CustomerName": lead.name,
        "CustomerName2": lead.name2,
        "PhoneNumber": call.phone_number,
        "RecordingState": int(call.recording),
    }
    if style.call_lead_id:
        fields["LeadId"] = call.lead_id
    return Obj("Call", fields)


def calls_arr(world: World, calls: Sequence[Call], style: WireStyle) -> Arr:
    return Arr("Call", [call_obj(world, c, style) for c in calls])


def lead_phone_obj(phone: LeadPhone, style: WireStyle) -> Obj:
    fields: dict[str, Value] = {
        "LeadId": phone.lead_id,
        "PhoneNumber": phone.phone_number,
        "RecordType": phone.record_type,
        "RecordTypeId": phone.record_type_id,
    }
    if style.lead_phone_id_field:
        fields[style.lead_phone_id_field] = phone.lead_phone_id
    return Obj("LeadPhone", fields)


def users_arr(users: Sequence[tuple[int, str]]) -> Arr:
    return Arr(
        "AgentNameIDPair",
        [Obj("AgentNameIDPair", {"FullName": name, "ID": uid}) for uid, name in users],
    )


def result_code_obj(code: ResultCode) -> Obj:
    return Obj(
        "ResultCode",
        {
            "Code": code.code,
            "Description": code.description,
            "IsAgentViewable": code.is_agent_viewable,
            "IsCallAgain": code.is_call_again,
            "IsCallback": code.is_callback,
            "IsSuccess": code.is_success,
            "IsSystemResultCode": code.is_system,
            "IsTransfer": code.is_transfer,
            "ResultCodeID": code.result_code_id,
            "Sales": code.sales,
            "StatusID": code.status_id,
            "SuccessType": code.success_type,
        },
    )


def _agents_in(world: World, campaign_id: int, state: AgentState) -> list[int]:
    return [
        a.user_id
        for a in world.agents.values()
        if a.campaign_id == campaign_id and world.agent_state(a.user_id) == state
    ]


def campaign_obj(world: World, campaign: Campaign) -> Obj:
    """The platform's internal Campaign object, exposed as it is (maxcontact-notes.md)."""
    cid = campaign.campaign_id
    live_calls = [
        c for c in world.calls.values() if c.campaign_id == cid and c.state != CallState.ENDED
    ]
    sales = sum(
        d.num_sales
        for d in world.dispositions
        if world.agents.get(d.user_id) and world.agents[d.user_id].campaign_id == cid
    )
    now = world.clock()
    active = campaign.active
    blackout = Obj(
        "BlackoutDates",
        {
            "BlackoutDateID": cid * 10 + 1,
            "CampaignID": cid,
            "Date": When(dt.datetime(2026, 12, 25, tzinfo=dt.UTC).timestamp()),
            "Description": "Christmas Day",
        },
    )
    lists = [
        Obj(
            "CampaignList",
            {
                "Active": active,
                "ListID": lid,
                "ListName": f"{campaign.name} list {n}",
                "Priority": n,
            },
        )
        for n, lid in enumerate(campaign.list_ids, start=1)
    ]
    schedules = [
        Obj("CampaignSchedule", {"DayOfWeek": day, "EndTime": "20:00", "StartTime": "09:00"})
        for day in range(1, 6)
    ]
    return Obj(
        "Campaign",
        {
            "Active": active,
            "AlwaysRun": cid == 3,
            "AutoRecord": campaign.auto_record,
            "BlackoutDates": "2026-12-25" if active else None,
            "BlackoutDateses": Arr("BlackoutDates", [blackout] if active else []),
            "CalculatedLines": len(live_calls),
            "CallerID": campaign.caller_id,
            "CallsPlacedThisMinute": 0,
            "CampaignID": cid,
            "CampaignIcon": "phone-outgoing" if campaign.type == 1 else "phone-incoming",
            "CampaignName": campaign.name,
            "Cps": 5,
            "DefaultListID": campaign.list_ids[0],
            "DefaultPhoneType": 1,
            "Description": campaign.description,
            "DropQueue": Arr("Call", []),
            "EndLine": 0,
            "EstimatedRecordCount": 1200 * len(campaign.list_ids) if active else 0,
            "FirstCreated": campaign.first_created,
            "InitialPacing": 100,
            "IvrSessions": Arr("IvrSession", []),
            "LastFetch": f"{dt.datetime.fromtimestamp(now, dt.UTC):%Y-%m-%dT%H:%M:%S}"
            if active
            else None,
            "LastModified": campaign.first_created.replace("T", " "),
            "LastPacingAdjust": None,
            "Leads": Obj("CampaignLeadCounts", {"Available": 980, "Callbacks": 12, "Total": 1200})
            if active
            else None,
            "LeadsInProgress": Arr("long", [c.lead_id for c in live_calls]),
            "LinesToReturn": 0,
            "Lists": Arr("CampaignList", lists),
            "ListsForStats": Arr("int", list(campaign.list_ids)),
            "LiveStats": Obj(
                "CampaignLiveStats",
                {
                    "AgentsOnCall": len(_agents_in(world, cid, AgentState.ON_CALL)),
                    "AgentsReady": len(_agents_in(world, cid, AgentState.READY)),
                    "AgentsWrapping": len(_agents_in(world, cid, AgentState.WRAP)),
                    "CallsInProgress": len(live_calls),
                },
            ),
            "LiveStatsTemp": None,
            "MOTD": campaign.motd,
            "MaxCallCap": 50,
            "NumToCall": 0,
            "Pacing": 100,
            "PlacedPredictiveCallsLock": Obj("Object", {}),
            "PlacingInterval": 1000,
            "PreviewQueue": Arr("Call", []),
            "ReadyUsers": Arr("int", _agents_in(world, cid, AgentState.READY)),
            "ResultSessions": Arr("ResultSession", []),
            "Schedule": "Mon-Fri 09:00-20:00",
            "SchedulePlanID": 1,
            "Schedules": Arr("CampaignSchedule", schedules),
            "SchedulesUI": None,
            "SessionID": 7000 + cid if active else 0,
            "SessionStats": Obj(
                "CampaignSessionStats",
                {"Connects": 0, "Dials": world.dials_by_campaign.get(cid, 0), "Sales": sales},
            ),
            "SoftCap": 40,
            "StartLine": 0,
            "Status": 1 if active else 0,
            "TargetDropPercent": 3,
            "TeleParamPlanID": 1,
            "TenantID": 42,
            "Type": campaign.type,
            "UncalledLeads": Arr("long", []),
            "UseAutoPacing": campaign.type == 1,
            "UseGlobalBlackoutDates": True,
            "UserAddress": f"campaign{cid}@sim.maxcontact.invalid",
            "UserName": f"campaign{cid}",
            "ZipTone": 0,
            "ZipToneBeep": 0,
            "ZipToneWav": None,
            # Undocumented extras, as the platform's internal object would carry.
            "ResultCodePlanID": 1,
            "TimeZoneId": "GMT Standard Time",
        },
    )


def acd_queue_obj(world: World, queue: AcdQueue) -> Obj:
    ready = sum(
        1 for a in world.agents.values() if world.agent_state(a.user_id) == AgentState.READY
    )
    return Obj(
        "AcdQueue",
        {
            "AbandonThreshold": queue.abandon_threshold,
            "AcceptableQueueTime": queue.acceptable_queue_time,
            "AcdIcon": queue.icon,
            "AcdName": queue.name,
            "Active": queue.active,
            "DefaultTimeout": queue.default_timeout,
            "DefaultTimeoutIvr": queue.default_timeout * 2,
            "ID": queue.queue_id,
            "SessionStats": Obj("AcdSessionStats", {"Abandoned": 1, "Answered": 17, "Offered": 18}),
            "SkipIndex": 0,
            "SnapshotStats": Obj(
                "AcdSnapshotStats",
                {"AgentsAvailable": ready, "CallsWaiting": 0, "LongestWaitSeconds": 0},
            ),
            "TenMinuteOffers": Obj("TenMinuteOffers", {"Counts": Arr("int", [2, 1, 0, 3])}),
            "TenMinuteOffersVirtualQueue": None,
            "UserAddress": f"acd{queue.queue_id}@sim.maxcontact.invalid",
            "UserName": f"acd{queue.queue_id}",
            "ZipTone": 0,
            "ZipToneBeep": 0,
            "ZipToneWav": None,
            # Undocumented extras.
            "OverflowAcdID": None,
            "Priority": queue.queue_id,
        },
    )
