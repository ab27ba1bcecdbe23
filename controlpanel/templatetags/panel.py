"""Template helpers of the agent panel: phone numbers, durations and labels for people."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime

import phonenumbers
from django import template
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from telephony.desk import AgentState, Phase, Recording
from telephony.models import Tenant

register = template.Library()

STATE_LABELS = {
    AgentState.READY: _("Ready"),
    AgentState.ON_CALL: _("On a call"),
    AgentState.WRAP_UP: _("Wrap-up"),
    AgentState.NOT_READY: _("Not ready"),
}
STATE_HINTS = {
    AgentState.READY: _("Calls can arrive at any moment."),
    AgentState.ON_CALL: _("Talking to a customer."),
    AgentState.WRAP_UP: _("Choose a result for the call before the next one."),
    AgentState.NOT_READY: _("No calls will arrive until you press Ready."),
}
PHASE_LABELS = {
    Phase.RINGING: _("Ringing"),
    Phase.TALKING: _("Connected"),
    Phase.HELD: _("On hold"),
    Phase.ENDED: _("Ended: needs a result"),
    Phase.UNKNOWN: _("In progress"),
}
RECORDING_LABELS = {
    Recording.ON: _("Recording"),
    Recording.PAUSED: _("Recording paused"),
    Recording.OFF: _("Not recorded"),
    Recording.UNKNOWN: _("Recording state unknown"),
}
DIRECTION_LABELS = {"inbound": _("Inbound"), "outbound": _("Outbound")}


@register.filter
def state_label(state: AgentState) -> str:
    return str(STATE_LABELS.get(state, state))


@register.filter
def state_hint(state: AgentState) -> str:
    return str(STATE_HINTS.get(state, ""))


@register.filter
def phase_label(phase: Phase) -> str:
    return str(PHASE_LABELS.get(phase, phase))


@register.filter
def recording_label(recording: Recording) -> str:
    return str(RECORDING_LABELS.get(recording, recording))


@register.filter
def direction_label(direction: str | None) -> str:
    return str(DIRECTION_LABELS.get(direction or "", ""))


@register.filter
def phone(raw: str, tenant: Tenant) -> str:
    """A number written for people: national style at home, international abroad."""
    return _written(raw, tenant.default_region) if raw else ""


@functools.lru_cache(maxsize=4096)
def _written(raw: str, region: str) -> str:
    """Kept: every render writes the same few numbers again (parsing was 8% of a render)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return raw
    home = phonenumbers.country_code_for_region(region)
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == home
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, style)


@register.filter
def duration(since: datetime | None) -> str:
    """How long since `since`, as m:ss or h:mm:ss (panel.js keeps it ticking)."""
    if since is None:
        return ""
    seconds = max(0, int((timezone.now() - since).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@register.filter
def iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


@register.simple_tag
def action_key() -> str:
    """A fresh idempotency key for one action form (see telephony.desk.perform)."""
    return uuid.uuid4().hex


@register.filter
def get_item(mapping: dict[object, object], key: object) -> object:
    return mapping.get(key)


@register.simple_tag(takes_context=True)
def request_headers(context: template.Context) -> str:
    """The headers every htmx request of the page sends (JSON for `hx-headers:inherited`).

    An embedded page adds its tenant (so a lost login returns to the frameable login) and,
    when it was opened by a launch link, the panel token that stands in for the cookie.
    """
    headers = {"X-CSRFToken": str(context.get("csrf_token", ""))}
    embed = context.get("embed")
    if embed:
        headers["X-Panel-Embed"] = embed["tenant"]
        if embed.get("token"):
            headers["X-Panel-Token"] = embed["token"]
    return json.dumps(headers)
