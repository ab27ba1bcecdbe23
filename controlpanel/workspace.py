"""The workspace: the one fragment that shows an agent's state and calls.

Views render it in the page and in the response to every action; the poller renders the very
same partial (`panel/agent.html#workspace`) before it publishes it to her open panels. This
module builds its context, once, for both.
"""

from __future__ import annotations

import re
from typing import Any

from django.template.loader import render_to_string
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from telephony import desk as desks
from telephony.desk import Desk, Outcome
from telephony.errors import MaxContactError, Rejected
from telephony.models import AgentAccount

from . import crm, directory, forms

PAGE = "panel/agent.html"


class Notice:
    """The one message the workspace shows after an action: what happened, what next."""

    def __init__(self, level: str, text: str, detail: str = "") -> None:
        self.level = level  # "success", "info" or "error"
        self.text = text
        self.detail = detail

    @classmethod
    def of(cls, outcome: Outcome, success: str) -> Notice:
        if outcome.error is None:
            detail = outcome.result.response_detail if outcome.result else ""
            return cls("success", success, detail)
        error = outcome.error
        if isinstance(error, desks.Duplicate):
            return cls("info", error.agent_message)
        if isinstance(error, Rejected):
            return cls("error", _("MaxContact refused: %(detail)s") % {"detail": error.message})
        return cls("error", error.agent_message)


def result_codes(account: AgentAccount) -> tuple[list[Any], str]:
    try:
        return directory.result_codes(account), ""
    except MaxContactError as error:
        return [], error.agent_message


def context(
    account: AgentAccount,
    desk: Desk,
    *,
    notice: Notice | None = None,
    bound: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the workspace partial draws. `bound` holds forms re-shown with their input."""
    bound = bound or {}
    tenant = account.tenant
    codes: list[Any] = []
    codes_error = ""
    if desk.wrap_up_calls or len(desk.live_calls) >= 2:
        codes, codes_error = result_codes(account)
    choices = forms.result_code_choices(codes, tenant.result_code_labels)
    dispose_forms = {
        view.call_id: bound.get(f"dispose-{view.call_id}")
        or forms.DisposeForm(choices=choices, prefix=f"c{view.call_id}")
        for view in desk.wrap_up_calls
    }
    transfer = None
    live = desk.live_calls
    if len(live) >= 2:
        transfer = bound.get("transfer") or forms.TransferCompleteForm(
            codes=codes,
            labels=tenant.result_code_labels,
            initial={"call1": live[0].call_id, "call2": live[1].call_id},
        )
    return {
        "account": account,
        "tenant": tenant,
        "desk": desk,
        "crm_state": crm.state_json(account, desk),
        "notice": notice,
        "dispose_forms": dispose_forms,
        "codes_error": codes_error,
        "transfer_form": transfer,
        "transfer_start_form": bound.get("transfer_start")
        or forms.TransferStartForm(tenant=tenant),
    }


def render(
    account: AgentAccount,
    desk: Desk,
    *,
    version: int | None = None,
    shared: dict[str, Any] | None = None,
) -> str:
    """The workspace partial as the poller publishes it (no notice: nothing was clicked).

    `shared`: a context already computed for this desk by the response being drawn."""
    base = context(account, desk) if shared is None else {**shared, "notice": None}
    return render_to_string(f"{PAGE}#workspace", {**base, "version": version, "live": True})


LIVE_NOTICE = '<div id="notice" hx-preserve></div>'
_ANNOUNCE = re.compile(r'data-announce="[^"]*"')


def response_from_live(live_html: str, context: dict[str, Any]) -> SafeString:
    """A click's workspace, made from the one just published for her other tabs instead of
    rendered a second time (rendering was a third of a click's CPU; docs/performance.md).

    The two differ only where the template says `live`: the notice, and what a screen reader
    announces. Neither marker can come from data: everything MaxContact sends is escaped.
    """
    notice = context.get("notice")
    notice_html = render_to_string(f"{PAGE}#notice", context) if notice is not None else ""
    html = live_html.replace(LIVE_NOTICE, f'<div id="notice">{notice_html}</div>', 1)
    if notice is not None:
        html = _ANNOUNCE.sub(
            lambda _: f'data-announce="{conditional_escape(notice.text)}"', html, count=1
        )
    return mark_safe(html)  # noqa: S308 (our own render, data escaped by the template)
