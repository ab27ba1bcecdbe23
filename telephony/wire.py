"""From MaxContact's bytes to our types: XML or JSON in, frozen dataclasses out.

MaxContact is a .NET platform, so bodies come as DataContract XML (default namespaces,
`i:nil`, `i:type`, members in alphabetical order) or WCF/Json.NET JSON (`/Date(ms+zone)/` or
ISO-8601 dates). Field names are matched without regard to case, undocumented fields are
ignored, and `Data` may be null, one object or a list. Anything we cannot read becomes a
`MalformedResponse`, never another exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from .entities import AcdQueue, Call, Campaign, LeadPhone, ResultCode, Token, User
from .errors import AuthenticationFailed, MalformedResponse

XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


@dataclass(frozen=True)
class WireOptions:
    """The per-tenant answers to what the vendor text leaves unknown."""

    #: Field names that may carry a lead phone's own id (changelead's LeadPhoneID).
    lead_phone_id_fields: tuple[str, ...] = ("LeadPhoneID", "LeadPhoneId", "ID", "Id")
    #: Field names of the token service's reply that may carry the token's expiry.
    token_expiry_fields: tuple[str, ...] = ("Expires", "ExpiresOn", "ExpiryDate", "Expiry")
    #: The zone of dates that come without an offset.
    naive_time_zone: tzinfo = UTC


class Record:
    """One object from the wire, XML element or JSON object, read by case-insensitive name."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields  # lower-cased name -> raw value (str, number, bool, None, nested)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Record:
        return cls({str(k).lower(): v for k, v in obj.items()})

    @classmethod
    def from_xml(cls, element: Element) -> Record:
        fields: dict[str, Any] = {}
        for child in element:
            name = _local(child.tag).lower()
            fields.setdefault(name, _xml_value(child))
        return cls(fields)

    def get(self, *names: str) -> Any:
        for name in names:
            if name.lower() in self._fields:
                return self._fields[name.lower()]
        return None

    def has(self, name: str) -> bool:
        return name.lower() in self._fields


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _is_nil(element: Element) -> bool:
    return element.get(f"{XSI}nil", "").lower() == "true"


def _xml_value(element: Element) -> Any:
    """An element as a raw value: None for nil, text for a leaf, the element itself otherwise."""
    if _is_nil(element):
        return None
    if len(element) == 0:
        return element.text or ""
    return element


# --- Envelope ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """A parsed `CallActionResponse`."""

    success: bool
    data: Any  # None, a JSON dict or list, an XML element, or a raw scalar
    response_code: int | None
    response_detail: str


def parse_document(body: bytes) -> Record | list[Any]:
    """Parse a body by what it is, not by what its Content-Type claims."""
    text = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        try:
            root = SafeET.fromstring(text, forbid_dtd=True)
        except DefusedXmlException:
            raise MalformedResponse(
                "MaxContact sent XML with a document type or entities, which we refuse to read"
            ) from None
        except (SafeET.ParseError, LookupError, ValueError, RecursionError):
            # LookupError/ValueError: an encoding declaration Python cannot decode.
            raise MalformedResponse("MaxContact sent XML that does not parse") from None
        return Record.from_xml(root)
    if text.startswith((b"{", b"[")):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            raise MalformedResponse("MaxContact sent JSON that does not parse") from None
        if isinstance(value, dict):
            # ASP.NET AJAX services wrap the answer in {"d": ...}.
            if len(value) == 1 and "d" in value and isinstance(value["d"], dict):
                value = value["d"]
            return Record.from_json(value)
        return list(value)
    raise MalformedResponse("MaxContact answered with something that is neither XML nor JSON")


def parse_envelope(body: bytes) -> Envelope:
    try:
        return _parse_envelope(body)
    except MalformedResponse:
        raise
    except Exception:  # a shape nobody foresaw must still be a clear error, not a crash
        raise MalformedResponse("MaxContact sent an answer we cannot read") from None


def _parse_envelope(body: bytes) -> Envelope:
    document = parse_document(body)
    if not isinstance(document, Record) or not document.has("Success"):
        raise MalformedResponse("MaxContact's answer has no Success field")
    success = to_bool(document.get("Success"))
    if success is None:
        raise MalformedResponse("MaxContact's answer has an unreadable Success field")
    return Envelope(
        success=success,
        data=document.get("Data"),
        response_code=to_int(document.get("ResponseCode")),
        response_detail=to_str(document.get("ResponseDetail")),
    )


def records(data: Any, *, marker: str) -> Iterator[Record]:
    """The objects in `Data`, whether it is null, one object or a list.

    `marker` is a field every such object has: an XML element that holds it is one object, an
    XML element that does not is a list of objects (DataContract's ArrayOfX).
    """
    if data is None or (isinstance(data, str) and not data.strip()):
        return
    if isinstance(data, Record):
        yield data
    elif isinstance(data, dict):
        yield Record.from_json(data)
    elif isinstance(data, Element):
        item = Record.from_xml(data)
        if item.has(marker):
            yield item
        else:
            for child in data:
                if not _is_nil(child):
                    yield Record.from_xml(child)
    elif isinstance(data, list):
        for entry in data:
            if isinstance(entry, dict):
                yield Record.from_json(entry)
            elif entry is not None:
                raise MalformedResponse("MaxContact sent a list item that is not an object")
    else:
        raise MalformedResponse("MaxContact sent Data of an unexpected kind")


def one_record(data: Any, *, marker: str) -> Record | None:
    items = list(records(data, marker=marker))
    return items[0] if items else None


# --- Scalars ----------------------------------------------------------------------------------


def to_str(value: Any) -> str:
    if value is None or isinstance(value, (Element, Record, list, dict)):
        return ""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from JSON escapes
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def to_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 2**63 else None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return None


# Ids are at most 64-bit (.NET long): 19 digits, ASCII only (int() would take other scripts).
_INTEGER = re.compile(r"\s*[-+]?[0-9]{1,19}\s*", re.ASCII)


def to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "1"}:
            return True
        if lowered in {"false", "0"}:
            return False
    return None


_MS_DATE = re.compile(r"^\\?/Date\((-?[0-9]{1,16})([+-][0-9]{4})?\)\\?/$", re.ASCII)


def to_datetime(value: Any, naive_zone: tzinfo = UTC) -> datetime | None:
    """Read an ISO-8601 or WCF `/Date(ms+zone)/` date; None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return _to_datetime(value.strip(), naive_zone)
    except (ValueError, OverflowError, OSError):  # out of range for Python's datetime
        return None


def _to_datetime(text: str, naive_zone: tzinfo) -> datetime | None:
    match = _MS_DATE.match(text)
    if match:
        # The milliseconds are UTC; the suffix only says which zone the sender displays in.
        instant = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
        if match.group(2):
            sign = 1 if match.group(2)[0] == "+" else -1
            hours, minutes = int(match.group(2)[1:3]), int(match.group(2)[3:5])
            zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
            instant = instant.astimezone(zone)
        return instant
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=naive_zone)
    return parsed


# --- Entities ---------------------------------------------------------------------------------


def _required_int(record: Record, *names: str) -> int:
    value = to_int(record.get(*names))
    if value is None:
        raise MalformedResponse(f"MaxContact sent an object without a readable {names[0]}")
    return value


def call(record: Record, options: WireOptions) -> Call:
    return Call(
        call_id=_required_int(record, "CallId", "CallID"),
        start_time=to_datetime(record.get("CallStartTime"), options.naive_time_zone),
        state=to_int(record.get("CallState")),
        status=to_int(record.get("CallStatus")),
        customer_name=to_str(record.get("CustomerName")),
        customer_name2=to_str(record.get("CustomerName2")),
        phone_number=to_str(record.get("PhoneNumber")),
        recording_state=to_int(record.get("RecordingState")),
        lead_id=to_int(record.get("LeadId", "LeadID")),
    )


def calls(data: Any, options: WireOptions) -> list[Call]:
    return [call(item, options) for item in records(data, marker="CallId")]


def users(data: Any) -> list[User]:
    return [
        User(id=_required_int(item, "ID", "Id"), full_name=to_str(item.get("FullName")))
        for item in records(data, marker="FullName")
    ]


def lead_phones(data: Any, options: WireOptions) -> list[LeadPhone]:
    return [
        LeadPhone(
            lead_id=_required_int(item, "LeadId", "LeadID"),
            phone_number=to_str(item.get("PhoneNumber")),
            record_type=to_str(item.get("RecordType")),
            record_type_id=to_int(item.get("RecordTypeId", "RecordTypeID")),
            lead_phone_id=to_int(item.get(*options.lead_phone_id_fields)),
        )
        for item in records(data, marker="PhoneNumber")
    ]


def campaigns(data: Any) -> list[Campaign]:
    return [
        Campaign(
            campaign_id=_required_int(item, "CampaignID", "CampaignId"),
            name=to_str(item.get("CampaignName")),
            description=to_str(item.get("Description")),
            active=to_bool(item.get("Active")),
            status=to_int(item.get("Status")),
            type=to_int(item.get("Type")),
            caller_id=to_str(item.get("CallerID", "CallerId")),
            auto_record=to_bool(item.get("AutoRecord")),
            message_of_the_day=to_str(item.get("MOTD")),
        )
        for item in records(data, marker="CampaignID")
    ]


def acd_queues(data: Any) -> list[AcdQueue]:
    return [
        AcdQueue(
            id=_required_int(item, "ID", "Id"),
            name=to_str(item.get("AcdName")),
            active=to_bool(item.get("Active")),
            acceptable_queue_time=to_int(item.get("AcceptableQueueTime")),
            abandon_threshold=to_int(item.get("AbandonThreshold")),
        )
        for item in records(data, marker="AcdName")
    ]


def result_codes(data: Any) -> list[ResultCode]:
    def flag(item: Record, name: str) -> bool:
        return to_bool(item.get(name)) is True

    return [
        ResultCode(
            result_code_id=to_int(item.get("ResultCodeID", "ResultCodeId")),
            code=to_str(item.get("Code")),
            description=to_str(item.get("Description")),
            is_agent_viewable=flag(item, "IsAgentViewable"),
            is_call_again=flag(item, "IsCallAgain"),
            is_callback=flag(item, "IsCallback"),
            is_success=flag(item, "IsSuccess"),
            is_system=flag(item, "IsSystemResultCode"),
            is_transfer=flag(item, "IsTransfer"),
            sales=to_int(item.get("Sales")),
            status_id=to_int(item.get("StatusID", "StatusId")),
            success_type=to_int(item.get("SuccessType")),
        )
        for item in records(data, marker="Code")
        if to_str(item.get("Code"))
    ]


#: A cookie-value (RFC 6265): printable ASCII without space, '"', ',', ';' or backslash.
VALID_TOKEN = re.compile(r"[!#-+\--:<-\[\]-~]{1,4096}", re.ASCII)


def token(body: bytes, *, obtained_at: datetime, options: WireOptions) -> Token:
    """Read the token service's reply: `TokenKey` at the top level or inside `Data`."""
    try:
        return _token(body, obtained_at=obtained_at, options=options)
    except (MalformedResponse, AuthenticationFailed):
        raise
    except Exception:
        raise MalformedResponse(
            "MaxContact's token service sent an answer we cannot read"
        ) from None


def _token(body: bytes, *, obtained_at: datetime, options: WireOptions) -> Token:
    document = parse_document(body)
    if not isinstance(document, Record):
        raise MalformedResponse("MaxContact's token service answered without a TokenKey")
    holder: Record | None = document
    if not document.has("TokenKey"):
        if document.has("Success") and to_bool(document.get("Success")) is False:
            detail = to_str(document.get("ResponseDetail")) or "no reason given"
            raise AuthenticationFailed(f"MaxContact refused the login: {detail}")
        holder = one_record(document.get("Data"), marker="TokenKey")
    key = to_str(holder.get("TokenKey")) if holder is not None else ""
    if not key.strip():
        raise MalformedResponse("MaxContact's token service answered without a TokenKey")
    if not VALID_TOKEN.fullmatch(key.strip()):
        raise MalformedResponse("MaxContact's token service sent a TokenKey that cannot be used")
    assert holder is not None
    expires_at = to_datetime(holder.get(*options.token_expiry_fields), options.naive_time_zone)
    if expires_at is not None and expires_at <= obtained_at:
        expires_at = None  # a .NET "no expiry" (0001-01-01) or a skewed clock: not a deadline
    return Token(key=key.strip(), obtained_at=obtained_at, expires_at=expires_at)


def iter_names(values: Iterable[str]) -> tuple[str, ...]:
    """Clean a configured list of field names (admins type them)."""
    return tuple(name.strip() for name in values if name and name.strip())
