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

from telephony.desk import AgentState, Desk, Phase
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


def _dispositions(account: AgentAccount) -> list[dict[str, Any]]:
    """Her recent dispositions, newest `DISPOSED_KEPT` at most, in two queries whatever their
    number (a query per disposition made every render of a busy agent's panel slower through
    the shift: docs/performance.md)."""
    since = timezone.now() - DISPOSED_FOR
    entries = list(
        AuditEntry.objects.filter(
            account=account,
            method__in=("dispose", "connectcalls"),
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
    for found in TrackedCall.objects.filter(
        account=account, call_id__in={call_id for _e, call_id, _c, _n in wanted}
    ).order_by("first_seen_at"):
        sightings.setdefault(int(found.call_id), []).append(found)
    disposed = []
    for entry, call_id, code, notes in wanted:
        # The latest sighting of that call id before the disposition (ids may be reused).
        seen = [s for s in sightings.get(call_id, []) if s.first_seen_at <= entry.created_at]
        sighting = seen[-1] if seen else None
        disposed.append(
            {
                "disposalId": f"{entry.pk}-{call_id}",
                "callId": call_id,
                "firstSeen": _iso(sighting.first_seen_at) if sighting else None,
                "phone": (sighting.phone_number or None) if sighting else None,
                "leadId": sighting.lead_id if sighting else None,
                "resultCode": code,
                "notes": notes or "",
                "at": _iso(entry.created_at),
            }
        )
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
