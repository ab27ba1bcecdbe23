"""The simulated MaxContact dialler: agents, calls, leads, and what each action does to them.

No HTTP lives here. server.py turns a request into one method call and the result (or the
`Rejected` it raised) into a CallActionResponse. The numbers in `CallState`, `CallStatus`,
`RecordingState` and `ResponseCode` are the simulator's own choices: the vendor's values are
unknown (maxcontact-notes.md), and docs/simulator.md lists them.

Every public method expects the caller to hold the server's world lock.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import re
import time
from collections.abc import Callable
from typing import Any


class CallState(enum.IntEnum):
    RINGING = 1  # dialling out, or an inbound call being offered
    CONNECTED = 2
    HELD = 3
    ENDED = 4  # hung up, listed until it is disposed


class CallStatus(enum.IntEnum):
    INBOUND = 1
    OUTBOUND = 2  # manual dial


class RecordingState(enum.IntEnum):
    NOT_RECORDED = 0
    RECORDING = 1
    STOPPED = 2


class ResponseCode(enum.IntEnum):
    OK = 0
    INVALID_PARAMETER = 1
    USER_NOT_LOGGED_IN = 2
    CALL_NOT_FOUND = 3
    CALL_WRONG_STATE = 4
    AGENT_WRONG_STATE = 5
    RESULT_CODE_REJECTED = 6
    LEAD_NOT_FOUND = 7
    NOT_PERMITTED = 8
    TOKEN_INVALID = 401


class AgentState(enum.StrEnum):
    NOT_READY = "not_ready"
    READY = "ready"
    ON_CALL = "on_call"
    WRAP = "wrap"


class Rejected(Exception):
    """MaxContact refused the action: a CallActionResponse with Success=false."""

    def __init__(self, code: ResponseCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


# ---------------------------------------------------------------------------------------------
# Seed data


@dataclasses.dataclass(frozen=True)
class SeedAgent:
    user_id: int
    login: str
    password: str
    full_name: str


SEED_AGENTS: tuple[SeedAgent, ...] = (
    SeedAgent(101, "alice.agent", "alice-maxcontact-pw", "Alice Archer"),
    SeedAgent(102, "bob.agent", "bob-maxcontact-pw", "Bob Baker"),
    SeedAgent(103, "carol.agent", "carol-maxcontact-pw", "Carol Clark"),
)


def crowd_agents(count: int) -> tuple[SeedAgent, ...]:
    """Extra agents for load tests: user ids from 10001, login crowdN.agent, password crowdN-pw."""
    return tuple(
        SeedAgent(10_000 + n, f"crowd{n}.agent", f"crowd{n}-pw", f"Crowd Agent {n}")
        for n in range(1, count + 1)
    )


# Users listed by /users who are not logged in to the dialler (no login here).
OTHER_USERS: tuple[tuple[int, str], ...] = (
    (104, "Dev Desai"),
    (105, "Erin Evans"),
    (201, "Sofia Stone"),
    (202, "Tariq Turner"),
)

AGENT_CAMPAIGN: dict[int, int] = {101: 1, 102: 1, 103: 2}

RECORD_TYPES: dict[str, int] = {"Mobile": 1, "Home": 2, "Work": 3, "Other": 4}


@dataclasses.dataclass(frozen=True)
class ResultCode:
    code: str
    description: str
    result_code_id: int
    status_id: int  # lead status the code leads to: 1 open, 2 closed, 3 callback, 4 do not call
    success_type: int  # 0 none, 1 success, 2 contact without success
    sales: int = 0
    is_agent_viewable: bool = True
    is_call_again: bool = False
    is_callback: bool = False
    is_success: bool = False
    is_system: bool = False
    is_transfer: bool = False


RESULT_CODES: tuple[ResultCode, ...] = (
    ResultCode("SALE", "Sale made", 11, 2, 1, sales=1, is_success=True),
    ResultCode("NOSALE", "Spoke to customer, no sale", 12, 2, 2),
    ResultCode("CALLBACK", "Customer asked to be called back", 13, 3, 2, is_callback=True),
    ResultCode("NOANSWER", "No answer", 14, 1, 0, is_call_again=True),
    ResultCode("WRONGNUM", "Wrong number", 15, 4, 0),
    ResultCode("TRANSFER", "Transferred to a colleague", 16, 2, 2, is_transfer=True),
    ResultCode("ABANDON", "Abandoned by the dialler", 1, 1, 0, is_agent_viewable=False,
               is_call_again=True, is_system=True),
    ResultCode("BRIDGE", "Bridged to another call", 2, 2, 0, is_agent_viewable=False,
               is_system=True, is_transfer=True),
    ResultCode("BRIDGE_WARM", "Warm transfer bridge", 3, 2, 0, is_agent_viewable=False,
               is_system=True, is_transfer=True),
    ResultCode("CANCEL", "Cancelled before connect", 4, 1, 0, is_agent_viewable=False,
               is_call_again=True, is_system=True),
    ResultCode("HKT", "Customer hung up", 5, 1, 0, is_agent_viewable=False,
               is_call_again=True, is_system=True),
    ResultCode("HKT_AGENT", "Agent hung up", 6, 1, 0, is_agent_viewable=False,
               is_call_again=True, is_system=True),
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Campaign:
    campaign_id: int
    name: str
    description: str
    active: bool
    auto_record: bool
    caller_id: str
    type: int  # 1 outbound, 2 inbound, 3 blended
    list_ids: tuple[int, ...]
    first_created: str
    motd: str | None = None


CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign(1, "Home Energy Renewals", "Outbound renewals for energy customers", True, True,
             "01632960000", 1, (11, 12), "2024-02-05T09:12:44", "Renewal prices changed today"),
    Campaign(2, "Broadband Upgrades", "Fibre upgrade offers", True, False, "01632960001", 1,
             (21,), "2024-06-17T14:03:10"),
    Campaign(3, "Customer Service Inbound", "Inbound service line", True, True, "03069990000",
             3, (31,), "2023-11-01T08:00:00"),
    Campaign(4, "Spring Promo 2025", "Finished seasonal promotion", False, True, "01632960002",
             1, (41,), "2025-02-20T10:30:00"),
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class AcdQueue:
    queue_id: int
    name: str
    active: bool
    icon: str | None
    acceptable_queue_time: int
    abandon_threshold: int
    default_timeout: int


ACD_QUEUES: tuple[AcdQueue, ...] = (
    AcdQueue(1, "Sales", True, "cart", 20, 5, 30),
    AcdQueue(2, "Service", True, "headset", 30, 10, 45),
    AcdQueue(3, "Billing", True, None, 40, 10, 60),
)

# (lead id, name, second name, [(lead phone id, number, record type)]), oldest first.
# Lead ids are long in the vendor text: two of them exceed 2^31. Lead 3000000017 is newer than
# 4000456 and shares its mobile, so a dial to 07700900456 matches 3000000017.
SEED_LEADS: tuple[tuple[int, str, str | None, tuple[tuple[int, str, str], ...]], ...] = (
    (4000123, "Dana Doyle", None,
     ((880001, "07700900123", "Mobile"), (880002, "01632960123", "Home"))),
    (4000456, "Eli Evans", "Evans Plumbing Ltd",
     ((880003, "07700900456", "Mobile"), (880004, "02079460456", "Work"),
      (880005, "01632960456", "Home"))),
    (2147483651, "Farah Fox", None, ((880006, "07700900789", "Mobile"),)),
    (3000000017, "Gus Green", "Green & Sons",
     ((880007, "07700900456", "Mobile"), (880008, "02079460017", "Work"))),
    (4000789, "Hana Hill", None, ((880009, "01632960789", "Home"),)),
)  # fmt: skip

FIRST_CALL_ID = 1000
FIRST_NEW_LEAD_ID = 5_000_000_001
FIRST_NEW_LEAD_PHONE_ID = 880_101

_PHONE = re.compile(r"\+?[0-9]{6,15}")


# ---------------------------------------------------------------------------------------------
# State


@dataclasses.dataclass
class LeadPhone:
    lead_phone_id: int
    lead_id: int
    phone_number: str
    record_type: str

    @property
    def record_type_id(self) -> int:
        return RECORD_TYPES[self.record_type]


@dataclasses.dataclass
class Lead:
    lead_id: int
    name: str
    name2: str | None
    phones: list[LeadPhone]
    created_seq: int


@dataclasses.dataclass
class Call:
    call_id: int
    user_id: int
    campaign_id: int
    lead_id: int
    phone_number: str
    status: CallStatus
    start_time: float
    state: CallState = CallState.RINGING
    recording: RecordingState = RecordingState.NOT_RECORDED
    connect_at: float | None = None
    customer_hangup_at: float | None = None


@dataclasses.dataclass
class Agent:
    user_id: int
    login: str
    full_name: str
    campaign_id: int
    base_state: AgentState = AgentState.NOT_READY  # ready or not_ready, when she has no calls
    return_to: AgentState = AgentState.NOT_READY  # base state when her first call began
    next_offer_at: float | None = None  # demo mode only


@dataclasses.dataclass(frozen=True)
class Disposition:
    call_id: int
    user_id: int
    lead_id: int
    phone_number: str
    result_code: str
    notes: str
    num_sales: int
    time: float
    via: str  # "dispose" or "connectcalls"


@dataclasses.dataclass(frozen=True)
class Bridge:
    user_id: int
    call1: int
    call2: int
    result_code1: str
    result_code2: str
    notes1: str
    notes2: str
    num_sales1: int
    num_sales2: int
    time: float


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    offer_every: tuple[float, float] = (15.0, 40.0)
    talk_for: tuple[float, float] = (30.0, 90.0)
    ring_seconds: float = 2.0


class World:
    """One tenant's dialler. Deterministic unless `demo` is given."""

    def __init__(
        self,
        *,
        demo: DemoSettings | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        crowd: int = 0,
    ) -> None:
        self.demo = demo
        self.seed_agents = SEED_AGENTS + crowd_agents(crowd)
        self.clock = clock
        self.rng = rng or random.Random()
        self.dial_ring_seconds = 0.0
        self.agents: dict[int, Agent] = {
            a.user_id: Agent(a.user_id, a.login, a.full_name, AGENT_CAMPAIGN.get(a.user_id, 1))
            for a in self.seed_agents
        }
        self.leads: dict[int, Lead] = {}
        self.calls: dict[int, Call] = {}
        self.dispositions: list[Disposition] = []
        self.bridges: list[Bridge] = []
        self.dials_by_campaign: dict[int, int] = {}
        self._next_call_id = FIRST_CALL_ID
        self._next_lead_id = FIRST_NEW_LEAD_ID
        self._next_lead_phone_id = FIRST_NEW_LEAD_PHONE_ID
        self._lead_seq = 0
        for lead_id, name, name2, phones in SEED_LEADS:
            lead = self._add_lead(lead_id, name, name2)
            for phone_id, number, record_type in phones:
                lead.phones.append(LeadPhone(phone_id, lead_id, number, record_type))

    # -- look-ups ------------------------------------------------------------------------------

    def users(self) -> list[tuple[int, str]]:
        """Every user of the tenant as (ID, FullName), by ID."""
        pairs = [(a.user_id, a.full_name) for a in self.seed_agents] + list(OTHER_USERS)
        return sorted(pairs)

    def campaigns(self) -> tuple[Campaign, ...]:
        return CAMPAIGNS

    def acd_queues(self) -> tuple[AcdQueue, ...]:
        return ACD_QUEUES

    def result_codes(self) -> tuple[ResultCode, ...]:
        """All codes, system ones included: the agent may choose only IsAgentViewable ones."""
        return RESULT_CODES

    def agent(self, user_id: int) -> Agent:
        agent = self.agents.get(user_id)
        if agent is None:
            raise Rejected(ResponseCode.USER_NOT_LOGGED_IN, f"User {user_id} is not logged in")
        return agent

    def calls_for(self, user_id: int) -> list[Call]:
        self.agent(user_id)
        return sorted(
            (c for c in self.calls.values() if c.user_id == user_id), key=lambda c: c.call_id
        )

    def agent_state(self, user_id: int) -> AgentState:
        calls = self.calls_for(user_id)
        if any(c.state != CallState.ENDED for c in calls):
            return AgentState.ON_CALL
        if calls:
            return AgentState.WRAP
        return self.agent(user_id).base_state

    def lead(self, lead_id: int) -> Lead:
        lead = self.leads.get(lead_id)
        if lead is None:
            raise Rejected(ResponseCode.LEAD_NOT_FOUND, f"Lead {lead_id} not found")
        return lead

    def lead_phones(self, user_id: int, lead_id: int) -> list[LeadPhone]:
        self.agent(user_id)
        return list(self.lead(lead_id).phones)

    # -- agent actions -------------------------------------------------------------------------

    def go_ready(self, user_id: int) -> None:
        agent = self.agent(user_id)
        calls = self.calls_for(user_id)
        live = [c for c in calls if c.state != CallState.ENDED]
        if live:
            raise Rejected(
                ResponseCode.AGENT_WRONG_STATE,
                f"User {user_id} is on call {live[0].call_id}: hang up and dispose it first",
            )
        if calls:
            raise Rejected(ResponseCode.AGENT_WRONG_STATE, "Dispose the call before going ready")
        agent.base_state = AgentState.READY

    def dial(self, user_id: int, phone: str, lead_id: int | None) -> Call:
        agent = self.agent(user_id)
        self._check_phone(phone)
        lead = self.lead(lead_id) if lead_id is not None else None
        for call in self.calls_for(user_id):
            if call.state in (CallState.RINGING, CallState.CONNECTED):
                raise Rejected(
                    ResponseCode.AGENT_WRONG_STATE,
                    f"User {user_id} is already on call {call.call_id}: "
                    "hold or hang up that call before dialling",
                )
            if call.state == CallState.ENDED:
                raise Rejected(
                    ResponseCode.AGENT_WRONG_STATE,
                    f"Dispose call {call.call_id} before dialling",
                )
        if lead is None:
            lead = self._newest_lead_with(phone) or self._new_lead_with(phone)
        self.dials_by_campaign[agent.campaign_id] = (
            self.dials_by_campaign.get(agent.campaign_id, 0) + 1
        )
        return self._start_call(agent, lead, phone, CallStatus.OUTBOUND, self.dial_ring_seconds)

    def hangup(self, user_id: int, call_id: int) -> None:
        call = self._agents_call(user_id, call_id)
        if call.state == CallState.ENDED:
            raise Rejected(ResponseCode.CALL_WRONG_STATE, f"Call {call_id} has already ended")
        self._end(call)

    def dispose(self, user_id: int, call_id: int, result_code: str) -> None:
        call = self._agents_call(user_id, call_id)
        code = self._result_code(result_code, agent_choice=True)
        self._end(call)
        self._remove(call, code, notes="", num_sales=code.sales, via="dispose")

    def hold(self, user_id: int, call_id: int) -> None:
        call = self._agents_call(user_id, call_id)
        if call.state == CallState.HELD:
            raise Rejected(ResponseCode.CALL_WRONG_STATE, f"Call {call_id} is already on hold")
        self._require_live(call)
        call.state = CallState.HELD

    def retrieve(self, user_id: int, call_id: int) -> None:
        call = self._agents_call(user_id, call_id)
        if call.state != CallState.HELD:
            raise Rejected(ResponseCode.CALL_WRONG_STATE, f"Call {call_id} is not on hold")
        for other in self.calls_for(user_id):
            if other.state == CallState.CONNECTED:
                raise Rejected(
                    ResponseCode.AGENT_WRONG_STATE,
                    f"Hold or hang up call {other.call_id} before retrieving call {call_id}",
                )
        call.state = CallState.CONNECTED

    def stop_record(self, user_id: int, call_id: int) -> None:
        call = self._agents_call(user_id, call_id)
        self._require_live(call)
        if call.recording == RecordingState.RECORDING:
            call.recording = RecordingState.STOPPED

    def start_record(self, user_id: int, call_id: int) -> None:
        """Starts or continues the recording (vendor text)."""
        call = self._agents_call(user_id, call_id)
        self._require_live(call)
        call.recording = RecordingState.RECORDING

    def change_lead(self, user_id: int, call_id: int, lead_phone_id: int) -> None:
        call = self._agents_call(user_id, call_id)
        for lead in self.leads.values():
            for phone in lead.phones:
                if phone.lead_phone_id == lead_phone_id:
                    call.lead_id = lead.lead_id
                    return
        raise Rejected(ResponseCode.LEAD_NOT_FOUND, f"Lead phone {lead_phone_id} not found")

    def create_new_lead(self, user_id: int, call_id: int, phone: str) -> Lead:
        call = self._agents_call(user_id, call_id)
        self._check_phone(phone)
        lead = self._new_lead_with(phone)
        call.lead_id = lead.lead_id
        return lead

    def connect_calls(
        self,
        user_id: int,
        call1_id: int,
        call2_id: int,
        result_code1: str,
        result_code2: str,
        notes1: str,
        notes2: str,
        num_sales1: int | None,
        num_sales2: int | None,
    ) -> Bridge:
        if call1_id == call2_id:
            raise Rejected(
                ResponseCode.INVALID_PARAMETER, "call1 and call2 must be two different calls"
            )
        call1 = self._agents_call(user_id, call1_id)
        call2 = self._agents_call(user_id, call2_id)
        for call in (call1, call2):
            if call.state == CallState.ENDED:
                raise Rejected(ResponseCode.CALL_WRONG_STATE, f"Call {call.call_id} has ended")
            self._require_live(call)
        # System codes such as BRIDGE_WARM are the usual choice here, so any existing code goes.
        code1 = self._result_code(result_code1, agent_choice=False)
        code2 = self._result_code(result_code2, agent_choice=False)
        sales1 = code1.sales if num_sales1 is None else num_sales1
        sales2 = code2.sales if num_sales2 is None else num_sales2
        bridge = Bridge(
            user_id, call1_id, call2_id, code1.code, code2.code,
            notes1, notes2, sales1, sales2, self.clock(),
        )  # fmt: skip
        self.bridges.append(bridge)
        self._remove(call1, code1, notes=notes1, num_sales=sales1, via="connectcalls")
        self._remove(call2, code2, notes=notes2, num_sales=sales2, via="connectcalls")
        return bridge

    # -- things that happen to the agent (control endpoints and demo mode) ---------------------

    def offer(
        self,
        user_id: int,
        *,
        phone: str | None = None,
        lead_id: int | None = None,
        force: bool = False,
        ring_seconds: float = 0.0,
    ) -> Call:
        """An inbound call reaches the agent; only while she is ready and idle unless forced."""
        agent = self.agent(user_id)
        state = self.agent_state(user_id)
        if state != AgentState.READY and not force:
            raise Rejected(
                ResponseCode.AGENT_WRONG_STATE, f"User {user_id} is not ready (state {state})"
            )
        if phone is not None:
            self._check_phone(phone)
        if lead_id is not None:
            lead = self.lead(lead_id)
            phone = phone or lead.phones[0].phone_number
        elif phone is not None:
            lead = self._newest_lead_with(phone) or self._new_lead_with(phone)
        else:
            lead = self.leads[SEED_LEADS[0][0]]
            phone = lead.phones[0].phone_number
        return self._start_call(agent, lead, phone, CallStatus.INBOUND, ring_seconds)

    def add_lead(self, name: str, name2: str | None, phone: str) -> Lead:
        """A new lead with one phone (tests give it names MaxContact might hold)."""
        self._check_phone(phone)
        lead = self._new_lead_with(phone)
        lead.name, lead.name2 = name, name2
        return lead

    def customer_hangup(self, call_id: int) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise Rejected(ResponseCode.CALL_NOT_FOUND, f"Call {call_id} not found")
        if call.state == CallState.ENDED:
            raise Rejected(ResponseCode.CALL_WRONG_STATE, f"Call {call_id} has already ended")
        self._end(call)
        return call

    def set_agent_state(self, user_id: int, state: AgentState) -> None:
        agent = self.agent(user_id)
        if state not in (AgentState.READY, AgentState.NOT_READY):
            raise Rejected(ResponseCode.INVALID_PARAMETER, "state must be ready or not_ready")
        if self.calls_for(user_id):
            raise Rejected(
                ResponseCode.AGENT_WRONG_STATE,
                f"User {user_id} has calls: hang up and dispose them first",
            )
        agent.base_state = state
        agent.return_to = state

    def advance(self) -> None:
        """Let time pass: ringing calls connect, customers hang up, demo calls are offered."""
        now = self.clock()
        for call in list(self.calls.values()):
            if call.connect_at is not None and call.connect_at <= now:
                self._connect(call, now)
            if (
                call.customer_hangup_at is not None
                and call.customer_hangup_at <= now
                and call.state in (CallState.CONNECTED, CallState.HELD)
            ):
                self._end(call)
        if self.demo is None:
            return
        for agent in self.agents.values():
            if self.agent_state(agent.user_id) != AgentState.READY:
                agent.next_offer_at = None
            elif agent.next_offer_at is None:
                agent.next_offer_at = now + self.rng.uniform(*self.demo.offer_every)
            elif agent.next_offer_at <= now:
                agent.next_offer_at = None
                lead = self.rng.choice(list(self.leads.values()))
                phone = self.rng.choice(lead.phones).phone_number
                self._start_call(agent, lead, phone, CallStatus.INBOUND, self.demo.ring_seconds)

    def snapshot(self) -> dict[str, Any]:
        """The whole world as plain data for /_sim/state."""
        return {
            "agents": [
                {
                    "user_id": a.user_id,
                    "login": a.login,
                    "full_name": a.full_name,
                    "campaign_id": a.campaign_id,
                    "state": str(self.agent_state(a.user_id)),
                    "calls": [self.call_facts(c) for c in self.calls_for(a.user_id)],
                }
                for a in self.agents.values()
            ],
            "leads": [
                {
                    "lead_id": lead.lead_id,
                    "name": lead.name,
                    "name2": lead.name2,
                    "phones": [dataclasses.asdict(p) for p in lead.phones],
                }
                for lead in self.leads.values()
            ],
            "dispositions": [dataclasses.asdict(d) for d in self.dispositions],
            "bridges": [dataclasses.asdict(b) for b in self.bridges],
            "next_call_id": self._next_call_id,
        }

    def call_facts(self, call: Call) -> dict[str, Any]:
        lead = self.leads[call.lead_id]
        return {
            "call_id": call.call_id,
            "user_id": call.user_id,
            "campaign_id": call.campaign_id,
            "lead_id": call.lead_id,
            "phone_number": call.phone_number,
            "customer_name": lead.name,
            "customer_name2": lead.name2,
            "start_time": call.start_time,
            "direction": call.status.name.lower(),
            "state": call.state.name.lower(),
            "recording": call.recording.name.lower(),
            "CallState": int(call.state),
            "CallStatus": int(call.status),
            "RecordingState": int(call.recording),
        }

    # -- internals -----------------------------------------------------------------------------

    def _agents_call(self, user_id: int, call_id: int) -> Call:
        self.agent(user_id)
        call = self.calls.get(call_id)
        if call is None:
            raise Rejected(ResponseCode.CALL_NOT_FOUND, f"Call {call_id} not found")
        if call.user_id != user_id:
            raise Rejected(
                ResponseCode.CALL_NOT_FOUND, f"Call {call_id} does not belong to user {user_id}"
            )
        return call

    def _require_live(self, call: Call) -> None:
        if call.state == CallState.RINGING:
            raise Rejected(
                ResponseCode.CALL_WRONG_STATE, f"Call {call.call_id} is not connected yet"
            )
        if call.state == CallState.ENDED:
            raise Rejected(ResponseCode.CALL_WRONG_STATE, f"Call {call.call_id} has ended")

    def _result_code(self, code: str, *, agent_choice: bool) -> ResultCode:
        if not code:
            raise Rejected(ResponseCode.INVALID_PARAMETER, "A result code is required")
        for candidate in RESULT_CODES:
            if candidate.code == code:
                if agent_choice and not candidate.is_agent_viewable:
                    raise Rejected(
                        ResponseCode.RESULT_CODE_REJECTED,
                        f"Result code '{code}' cannot be chosen by an agent",
                    )
                return candidate
        raise Rejected(ResponseCode.RESULT_CODE_REJECTED, f"Unknown result code '{code}'")

    def _check_phone(self, phone: str) -> None:
        if not _PHONE.fullmatch(phone):
            raise Rejected(ResponseCode.INVALID_PARAMETER, f"Invalid phone number '{phone}'")

    def _newest_lead_with(self, phone: str) -> Lead | None:
        digits = phone.lstrip("+")
        matches = [
            lead
            for lead in self.leads.values()
            if any(p.phone_number.lstrip("+") == digits for p in lead.phones)
        ]
        return max(matches, key=lambda lead: lead.created_seq, default=None)

    def _add_lead(self, lead_id: int, name: str, name2: str | None) -> Lead:
        self._lead_seq += 1
        lead = Lead(lead_id, name, name2, [], self._lead_seq)
        self.leads[lead_id] = lead
        return lead

    def _new_lead_with(self, phone: str) -> Lead:
        lead = self._add_lead(self._next_lead_id, "", None)
        self._next_lead_id += 1
        lead.phones.append(LeadPhone(self._next_lead_phone_id, lead.lead_id, phone, "Other"))
        self._next_lead_phone_id += 1
        return lead

    def _start_call(
        self, agent: Agent, lead: Lead, phone: str, status: CallStatus, ring_seconds: float
    ) -> Call:
        now = self.clock()
        if not self.calls_for(agent.user_id):
            agent.return_to = agent.base_state
        call = Call(
            call_id=self._next_call_id,
            user_id=agent.user_id,
            campaign_id=agent.campaign_id,
            lead_id=lead.lead_id,
            phone_number=phone,
            status=status,
            start_time=now,
        )
        self._next_call_id += 1
        self.calls[call.call_id] = call
        if ring_seconds > 0:
            call.connect_at = now + ring_seconds
        else:
            self._connect(call, now)
        return call

    def _connect(self, call: Call, now: float) -> None:
        call.connect_at = None
        if call.state != CallState.RINGING:
            return
        call.state = CallState.CONNECTED
        campaign = next(c for c in CAMPAIGNS if c.campaign_id == call.campaign_id)
        if campaign.auto_record:
            call.recording = RecordingState.RECORDING
        if self.demo is not None:
            call.customer_hangup_at = now + self.rng.uniform(*self.demo.talk_for)

    def _end(self, call: Call) -> None:
        call.state = CallState.ENDED
        call.connect_at = None
        call.customer_hangup_at = None

    def _remove(
        self, call: Call, code: ResultCode, *, notes: str, num_sales: int, via: str
    ) -> None:
        self.dispositions.append(
            Disposition(
                call_id=call.call_id,
                user_id=call.user_id,
                lead_id=call.lead_id,
                phone_number=call.phone_number,
                result_code=code.code,
                notes=notes,
                num_sales=num_sales,
                time=self.clock(),
                via=via,
            )
        )
        del self.calls[call.call_id]
        if not self.calls_for(call.user_id):
            self.agents[call.user_id].base_state = self.agents[call.user_id].return_to
