"""The agent's desk: her calls as the panel shows them, her inferred state, and her actions.

MaxContact reports calls (getcalls) but not the agent's state, and its enumerations are
undocumented. This module joins what getcalls says with what the tenant's meaning maps say and
with what the panel itself did (a hold, a recording pause), and keeps one durable record per
sighting of a call (`TrackedCall`). Views and the poller both read the desk through
`read_desk`, and every action goes through `perform`, which writes the audit log and makes
sure the same submitted form can never reach MaxContact twice.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from .entities import ActionResult, Call, DialResult
from .errors import (
    AuthenticationFailed,
    InvalidRequest,
    MalformedResponse,
    MaxContactError,
    Rejected,
    Unreachable,
)
from .models import AgentAccount, AuditEntry, TrackedCall

logger = logging.getLogger(__name__)


class AgentState(enum.StrEnum):
    READY = "ready"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    NOT_READY = "unknown"  # not ready, or MaxContact has not told us

    @classmethod
    def stored(cls, value: str) -> AgentState:
        """The state kept on an account row (anything unreadable counts as not ready)."""
        try:
            return cls(value)
        except ValueError:
            return cls.NOT_READY


class Phase(enum.StrEnum):
    RINGING = "ringing"
    TALKING = "talking"
    HELD = "held"
    ENDED = "ended"
    UNKNOWN = "unknown"


class Recording(enum.StrEnum):
    ON = "recording"
    PAUSED = "stopped"
    OFF = "off"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CallView:
    """One call as the agent sees it."""

    call: Call
    tracked_id: int
    phase: Phase
    recording: Recording
    direction: str | None  # "inbound", "outbound" or None when unknown
    state_label: str
    status_label: str
    recording_label: str
    started_at: datetime
    lead_id: int | None
    first_seen_at: datetime  # when the panel first saw this call (its id may repeat later)

    @property
    def call_id(self) -> int:
        return self.call.call_id

    @property
    def is_live(self) -> bool:
        return self.phase is not Phase.ENDED

    @property
    def is_held(self) -> bool:
        return self.phase is Phase.HELD


@dataclass(frozen=True)
class Desk:
    account: AgentAccount
    calls: list[CallView]
    state: AgentState
    state_since: datetime | None
    read_at: datetime | None  # when MaxContact last answered getcalls, None if it did not
    error: MaxContactError | None = None

    @property
    def live_calls(self) -> list[CallView]:
        return [c for c in self.calls if c.is_live]

    @property
    def wrap_up_calls(self) -> list[CallView]:
        return [c for c in self.calls if not c.is_live]

    def find(self, call_id: int) -> CallView | None:
        return next((c for c in self.calls if c.call_id == call_id), None)


def _label(labels: dict[str, str], value: int | None) -> str:
    if value is None:
        return ""
    return labels.get(str(value), str(value))


def _meaning(meanings: dict[str, str], value: int | None) -> str | None:
    return meanings.get(str(value)) if value is not None else None


def _view(account: AgentAccount, call: Call, tracked: TrackedCall) -> CallView:
    tenant = account.tenant
    meaning = _meaning(tenant.call_state_meanings, call.state)
    if meaning == "ended" or tracked.ended_seen_at is not None:
        phase = Phase.ENDED
    elif meaning == "held" or (meaning is None and tracked.held):
        phase = Phase.HELD
    elif meaning in ("ringing", "talking"):
        phase = Phase(meaning)
    else:
        phase = Phase.UNKNOWN
    recording_meaning = _meaning(tenant.recording_state_meanings, call.recording_state)
    if tracked.recording_paused or recording_meaning == "stopped":
        recording = Recording.PAUSED  # the vendor's own UI does not show an API pause
    elif recording_meaning in ("recording", "off"):
        recording = Recording(recording_meaning)
    else:
        recording = Recording.UNKNOWN
    return CallView(
        call=call,
        tracked_id=tracked.pk,
        phase=phase,
        recording=recording,
        direction=_meaning(tenant.call_status_meanings, call.status),
        state_label=_label(tenant.call_state_labels, call.state),
        status_label=_label(tenant.call_status_labels, call.status),
        recording_label=_label(tenant.recording_state_labels, call.recording_state),
        started_at=call.start_time or tracked.first_seen_at,
        lead_id=call.lead_id if call.lead_id is not None else tracked.lead_id,
        first_seen_at=tracked.first_seen_at,
    )


def _sighting(account: AgentAccount, call: Call, now: datetime) -> TrackedCall:
    """The current sighting of a call, created on first sight (another process may race us)."""
    defaults = {
        "first_seen_at": now,
        "started_at": call.start_time,
        "phone_number": call.phone_number[:40],
        "lead_id": call.lead_id,
    }
    try:
        with transaction.atomic():
            tracked, _ = TrackedCall.objects.current().get_or_create(
                account=account, call_id=call.call_id, defaults=defaults
            )
    except IntegrityError:
        tracked = account.calls.current().get(call_id=call.call_id)
    return tracked


def _ended_states(account: AgentAccount) -> set[str]:
    return {k for k, v in account.tenant.call_state_meanings.items() if v == "ended"}


def _news(call: Call, tracked: TrackedCall, ended: set[str], now: datetime) -> dict[str, Any]:
    """What getcalls tells of a call already sighted that its sighting does not say yet."""
    news: dict[str, Any] = {}
    if call.lead_id is not None and call.lead_id != tracked.lead_id:
        news["lead_id"] = call.lead_id
    if tracked.ended_seen_at is None and str(call.state) in ended:
        news["ended_seen_at"] = now
    return news


def _sightings_change(
    account: AgentAccount, calls: list[Call], current: dict[int, TrackedCall], now: datetime
) -> bool:
    """Whether `_track` would write anything: a call new or gone, or news of one."""
    if {call.call_id for call in calls} != set(current):
        return True
    ended = _ended_states(account)
    return any(_news(call, current[call.call_id], ended, now) for call in calls)


def _track(account: AgentAccount, calls: list[Call], now: datetime) -> dict[int, TrackedCall]:
    """Bring the account's call sightings in line with getcalls; return them by call id."""
    current = {t.call_id: t for t in account.calls.current()}
    ended = _ended_states(account)
    for call in calls:
        tracked = current.get(call.call_id)
        if tracked is None:
            tracked = current[call.call_id] = _sighting(account, call, now)
        news = _news(call, tracked, ended, now)
        if news:
            for name, value in news.items():
                setattr(tracked, name, value)
            tracked.save(update_fields=list(news))
    seen = {call.call_id for call in calls}
    gone = [call_id for call_id in current if call_id not in seen]
    if gone:
        account.calls.current().filter(call_id__in=gone).update(gone_at=now)
        for call_id in gone:
            del current[call_id]
    return current


def _next_state(account: AgentAccount, views: list[CallView]) -> AgentState:
    previous = AgentState.stored(account.desk_state)
    if any(v.is_live for v in views):
        return AgentState.ON_CALL
    if views:
        return AgentState.WRAP_UP
    if previous in (AgentState.ON_CALL, AgentState.WRAP_UP):
        returns_ready = account.tenant.after_last_call == "ready" and account.ready_before_call
        return AgentState.READY if returns_ready else AgentState.NOT_READY
    return previous


def _set_state(
    account: AgentAccount, state: AgentState, now: datetime, since: datetime | None = None
) -> None:
    """Record a new inferred state; `since` when it is known to have begun earlier."""
    if account.desk_state == state:
        return
    began = min(since, now) if since is not None else now
    changes: dict[str, Any] = {"desk_state": state.value, "desk_state_since": began}
    if state is AgentState.ON_CALL and account.desk_state != AgentState.WRAP_UP:
        changes["ready_before_call"] = account.desk_state == AgentState.READY
    AgentAccount.objects.filter(pk=account.pk).update(**changes)
    for name, value in changes.items():
        setattr(account, name, value)


def read_desk(account: AgentAccount) -> Desk:
    """Ask MaxContact for the agent's calls and return her desk (errors become `Desk.error`)."""
    now = timezone.now()
    try:
        calls = account.client().get_calls()
    except MaxContactError as error:
        return desk_without_answer(account, error)
    return desk_from_calls(account, calls, now)


def desk_from_calls(account: AgentAccount, calls: list[Call], now: datetime) -> Desk:
    """Her desk from a getcalls answer read at `now`: sightings and state brought up to date.

    When nothing needs writing (the common case: a click's read, most polls), no transaction
    is opened; SQLite's IMMEDIATE one takes the database's write lock even to read."""
    current = {t.call_id: t for t in account.calls.current()}
    if not _sightings_change(account, calls, current, now):
        views = [_view(account, call, current[call.call_id]) for call in calls]
        state = _next_state(account, views)
        if account.desk_state == state:
            return Desk(account, views, state, account.desk_state_since, now)
    with transaction.atomic():  # read again under the lock, then write
        tracked = _track(account, calls, now)
        views = [_view(account, call, tracked[call.call_id]) for call in calls]
        state = _next_state(account, views)
        # On a call since her earliest live call began (it may have begun before we saw it).
        starts = [v.started_at for v in views if v.is_live]
        _set_state(account, state, now, min(starts) if state is AgentState.ON_CALL else None)
    return Desk(
        account, views, AgentState.stored(account.desk_state), account.desk_state_since, now
    )


def desk_without_answer(account: AgentAccount, error: MaxContactError) -> Desk:
    """The last known calls (from our own records) when MaxContact cannot be read."""
    views = []
    for tracked in account.calls.current().order_by("first_seen_at"):
        placeholder = Call(
            call_id=int(tracked.call_id),
            start_time=tracked.started_at,
            state=None,
            status=None,
            customer_name="",
            customer_name2="",
            phone_number=tracked.phone_number,
            recording_state=None,
            lead_id=tracked.lead_id,
        )
        views.append(_view(account, placeholder, tracked))
    state = AgentState.stored(account.desk_state)
    return Desk(account, views, state, account.desk_state_since, None, error)


# --- Actions ----------------------------------------------------------------------------------


class Duplicate(MaxContactError):
    """The same form was sent before: the action was not sent to MaxContact again."""

    safe_to_retry = False

    def __init__(self) -> None:
        super().__init__(
            "That was already sent once (a double click or a resent form); it was not sent "
            "again. The panel shows the current state."
        )


@dataclass(frozen=True)
class Outcome:
    method: str
    result: ActionResult | None = None
    error: MaxContactError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _outcome_of(error: MaxContactError) -> AuditEntry.Outcome:
    if isinstance(error, Rejected):
        return AuditEntry.Outcome.REJECTED
    if isinstance(error, Unreachable):
        return (
            AuditEntry.Outcome.UNCERTAIN
            if error.may_have_reached_server
            else AuditEntry.Outcome.UNREACHABLE
        )
    if isinstance(error, AuthenticationFailed):
        return AuditEntry.Outcome.AUTHENTICATION
    if isinstance(error, MalformedResponse):
        return AuditEntry.Outcome.UNCERTAIN
    if isinstance(error, InvalidRequest):
        return AuditEntry.Outcome.REFUSED
    return AuditEntry.Outcome.UNCERTAIN


#: The actions that dispose of calls (connectcalls disposes both calls it bridges).
DISPOSING = ("dispose", "connectcalls")

#: What the panel records about a call after each successful action.
_AFTER: dict[str, dict[str, Any]] = {
    "hold": {"held": True},
    "retrieve": {"held": False},
    "stoprecord": {"recording_paused": True},
    "startrecord": {"recording_paused": False},
}


def perform(
    account: AgentAccount,
    method: str,
    run: Callable[[], ActionResult],
    *,
    user: Any,
    key: str | None,
    call_id: int | None = None,
    parameters: dict[str, Any] | None = None,
    request_id: str = "",
) -> Outcome:
    """Send one action to MaxContact at most once per `key`, and write it to the audit log.

    `run` calls the client; `parameters` is what the audit log keeps (never a secret).
    """
    try:
        # A savepoint only inside a transaction (a failed insert must not spoil it); on its
        # own the insert is atomic already, and BEGIN and COMMIT were two more round trips to
        # PostgreSQL on every click.
        with (
            transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext()
        ):
            entry = AuditEntry.objects.create(
                user=user if getattr(user, "pk", None) else None,
                account=account,
                remote_user_id=account.remote_user_id,
                method=method,
                call_id=call_id,
                parameters=parameters or {},
                idempotency_key=key or None,
                request_id=request_id,
            )
    except IntegrityError:
        return Outcome(method, error=Duplicate())

    started = time.monotonic()
    result: ActionResult | None = None
    error: MaxContactError | None = None
    try:
        result = run()
    except MaxContactError as caught:
        error = caught
    except Exception as caught:  # never leave the entry pending; the view shows a message
        logger.exception("unexpected error performing %s", method)
        error = MaxContactError(f"Unexpected error: {type(caught).__name__}")
    latency = int((time.monotonic() - started) * 1000)

    entry.latency_ms = latency
    if error is None:
        assert result is not None
        entry.outcome = AuditEntry.Outcome.OK
        entry.response_code = result.response_code
        entry.response_detail = result.response_detail
    else:
        entry.outcome = _outcome_of(error)
        entry.response_code = getattr(error, "response_code", None)
        entry.response_detail = error.message
    entry.save(update_fields=["latency_ms", "outcome", "response_code", "response_detail"])

    if error is None:
        _after_success(account, method, call_id, result)
    return Outcome(method, result=result, error=error)


def _after_success(
    account: AgentAccount, method: str, call_id: int | None, result: ActionResult | None
) -> None:
    now = timezone.now()
    current = account.calls.current()
    if method in _AFTER and call_id is not None:
        current.filter(call_id=call_id).update(**_AFTER[method])
    elif method == "hangup" and call_id is not None:
        current.filter(call_id=call_id, ended_seen_at__isnull=True).update(ended_seen_at=now)
    elif method == "goready":
        _set_state(account, AgentState.READY, now)
    elif method == "dial" and isinstance(result, DialResult) and result.call is not None:
        _sighting(account, result.call, now)
    elif method in DISPOSING:  # after the audit entry says ok: see controlpanel.crm
        AgentAccount.objects.filter(pk=account.pk).update(disposed_at=now)
        account.disposed_at = now
