"""What the CRM is told: the agent's calls as plain data, rendered into every workspace.

The workspace carries this state (`data-crm-state`) in the same fragment that draws the calls,
so the events the embedded page derives from it (static/embed.js) can never disagree with what
the panel shows. Dispositions come from the audit log: the result code and notes the agent
sent, whichever of her tabs sent them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.utils import timezone

from telephony.desk import DISPOSING, AgentState, Desk, Phase
from telephony.models import AgentAccount, AuditEntry, TrackedCall

#: How long a disposition stays in the state, for a panel that was disconnected meanwhile.
DISPOSED_FOR = timedelta(minutes=10)
#: And at most this many (the newest): a panel that missed more than that was away too long.
DISPOSED_KEPT = 10

AGENT_STATES = {
    AgentState.READY: "ready",
    AgentState.ON_CALL: "on_call",
    AgentState.WRAP_UP: "wrap_up",
    AgentState.NOT_READY: "not_ready",
}


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


#: This process's last answer per account: ((her user, her `disposed_at`), [(when, item)]).
#: Valid while her `disposed_at` is unchanged: it is written after each new disposition's
#: audit entry, so an answer read under the old value can only lack the new one, and is then
#: read again. The two queries were 12% of a click (docs/performance.md). What it shows of a
#: disposed call (number, lead) is as it was then, for the ten minutes it is listed.
_recent: dict[int, tuple[tuple[int, Any], list[tuple[Any, dict[str, Any]]]]] = {}


def _dispositions(account: AgentAccount) -> list[dict[str, Any]]:
    """Her recent dispositions, newest `DISPOSED_KEPT` at most, oldest first."""
    since = timezone.now() - DISPOSED_FOR
    last = account.disposed_at
    if last is None or last < since:
        return []  # none in the window: no query at all
    version = (account.user_id, last)
    cached = _recent.get(account.pk)
    if cached is None or cached[0] != version:
        cached = _recent[account.pk] = (version, _read_dispositions(account, since))
    # Fewer as they leave the window; none can be missing (none came since the read).
    return [item for at, item in cached[1] if at >= since]


def _read_dispositions(account: AgentAccount, since: Any) -> list[tuple[Any, dict[str, Any]]]:
    """From the audit log, in two queries whatever their number (a query per disposition
    made every render of a busy agent's panel slower through the shift)."""
    entries = list(
        AuditEntry.objects.filter(
            account=account,
            method__in=DISPOSING,
            outcome=AuditEntry.Outcome.OK,
            created_at__gte=since,
        ).order_by("-created_at", "-pk")[:DISPOSED_KEPT]
    )
    entries.reverse()
    wanted: list[tuple[AuditEntry, int, Any, Any]] = []
    for entry in entries:
        params = entry.parameters or {}
        if entry.method == "dispose":
            pairs = [(params.get("call_id"), params.get("result_code"), params.get("notes"))]
        else:  # connectcalls disposes both calls it bridges
            pairs = [
                (params.get(f"call{n}"), params.get(f"result_code{n}"), params.get(f"notes{n}"))
                for n in (1, 2)
            ]
        wanted += [
            (entry, call, code, notes) for call, code, notes in pairs if isinstance(call, int)
        ]
    sightings: dict[int, list[TrackedCall]] = {}
    if wanted:
        for found in TrackedCall.objects.filter(
            account=account, call_id__in={call_id for _e, call_id, _c, _n in wanted}
        ).order_by("first_seen_at"):
            sightings.setdefault(int(found.call_id), []).append(found)
    disposed = []
    for entry, call_id, code, notes in wanted:
        # The latest sighting of that call id before the disposition (ids may be reused).
        seen = [s for s in sightings.get(call_id, []) if s.first_seen_at <= entry.created_at]
        sighting = seen[-1] if seen else None
        item = {
            "disposalId": f"{entry.pk}-{call_id}",
            "callId": call_id,
            "firstSeen": _iso(sighting.first_seen_at) if sighting else None,
            "phone": (sighting.phone_number or None) if sighting else None,
            "leadId": sighting.lead_id if sighting else None,
            "resultCode": code,
            "notes": notes or "",
            "at": _iso(entry.created_at),
        }
        disposed.append((entry.created_at, item))
    return disposed


def state(account: AgentAccount, desk: Desk) -> dict[str, Any]:
    return {
        "agent": {"state": AGENT_STATES[desk.state], "since": _iso(desk.state_since)},
        "calls": [
            {
                "callId": view.call_id,
                "firstSeen": _iso(view.first_seen_at),
                "phone": view.call.phone_number or None,
                "leadId": view.lead_id,
                "direction": view.direction,
                "phase": view.phase.value,
                "held": view.phase == Phase.HELD,
                "recording": view.recording.value,
            }
            for view in desk.calls
        ],
        "disposed": _dispositions(account),
    }


def state_json(account: AgentAccount, desk: Desk) -> str:
    return json.dumps(state(account, desk), separators=(",", ":"), default=str)
