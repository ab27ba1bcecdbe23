"""The typed results of the MaxContact telephony API (one frozen dataclass per vendor entity).

Field names are ours (snake_case, domain words); each class's docstring names the vendor entity
it reads. Only what the panel uses is kept, plus any undocumented id a later control needs
(`Call.lead_id`, `LeadPhone.lead_phone_id`), which is None when the server does not send it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Call:
    """Vendor entity `Call`: an active call of the agent (from getcalls and dial)."""

    call_id: int
    start_time: datetime | None
    state: int | None
    status: int | None
    customer_name: str
    customer_name2: str
    phone_number: str
    recording_state: int | None
    lead_id: int | None = None  # undocumented; kept when MaxContact sends it


@dataclass(frozen=True)
class User:
    """Vendor entity `Agent Name ID Pair` (from users)."""

    id: int
    full_name: str


@dataclass(frozen=True)
class LeadPhone:
    """Vendor entity `Lead Phone` (from leadphones).

    The vendor text lists no id of its own, yet changelead takes a LeadPhoneID: `lead_phone_id`
    is read from the tenant's configured candidate field names and is None when none is sent.
    """

    lead_id: int
    phone_number: str
    record_type: str
    record_type_id: int | None
    lead_phone_id: int | None


@dataclass(frozen=True)
class Campaign:
    """Vendor entity `Campaign` (from campaigns), reduced to the fields an agent cares about."""

    campaign_id: int
    name: str
    description: str
    active: bool | None
    status: int | None
    type: int | None
    caller_id: str
    auto_record: bool | None
    message_of_the_day: str


@dataclass(frozen=True)
class AcdQueue:
    """Vendor entity `ACD (Skill) Queue` (from acdqueues)."""

    id: int
    name: str
    active: bool | None
    acceptable_queue_time: int | None
    abandon_threshold: int | None


@dataclass(frozen=True)
class ResultCode:
    """Vendor entity `Result Code` (from resultcodes)."""

    result_code_id: int | None
    code: str
    description: str
    is_agent_viewable: bool
    is_call_again: bool
    is_callback: bool
    is_success: bool
    is_system: bool
    is_transfer: bool
    sales: int | None
    status_id: int | None
    success_type: int | None


@dataclass(frozen=True)
class ActionResult:
    """A successful `CallActionResponse` of an action: its code and the vendor's own words."""

    response_code: int | None
    response_detail: str


@dataclass(frozen=True)
class DialResult(ActionResult):
    """The answer to dial: the new call, when MaxContact returns it in `Data`."""

    call: Call | None = None


@dataclass(frozen=True)
class Token:
    """A MaxContact API token from the token service. The key never appears in a repr."""

    key: str = field(repr=False)
    obtained_at: datetime
    expires_at: datetime | None
