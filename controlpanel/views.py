"""The agent panel: one page, and one thin view per control.

Every view acts for the logged-in agent only: her MaxContact account comes from
`request.user`, never from a URL or a form field. Actions are POSTs (CSRF-protected) that
call MaxContact once through `telephony.desk.perform`, then re-read her calls and answer with
the re-rendered workspace, so the response to a click shows its effect.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from telephony import desk as desks
from telephony.desk import Outcome
from telephony.entities import ActionResult
from telephony.errors import MaxContactError
from telephony.models import AgentAccount, AuditEntry, Tenant

from . import directory, embed, forms, live
from . import workspace as workspaces
from .workspace import PAGE, Notice

View = Callable[..., HttpResponse]
logger = logging.getLogger(__name__)


def embedded_tenant(request: HttpRequest) -> str:
    """The tenant of a request from inside a CRM frame: the one its page names in a header, or
    the one in an /embed/<tenant>/ path ("" when not embedded)."""
    slug = request.headers.get(embed.EMBED_HEADER, "")
    if not slug and request.path.startswith("/embed/"):
        slug = request.path.split("/")[2]
    return slug if embed.SLUG.fullmatch(slug) else ""


def agent_required(view: View) -> View:
    """Load the logged-in user's own agent account, or send her to log in."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            embedded = embedded_tenant(request)
            if getattr(request, "htmx", False):
                # A fetch would follow a redirect and swap the login page into the panel.
                login = f"{reverse('login')}?next={reverse('panel')}"
                if embedded:  # inside a CRM: its own (frameable) login, never /login/
                    login = reverse("embed", args=[embedded])
                return HttpResponse(status=200, headers={"HX-Redirect": login})
            return redirect_to_login(request.get_full_path())
        # Read with her user (controlpanel.backends, or a panel token's account).
        account = getattr(request.user, "agent_account", None)
        if account is None or not account.is_active:
            return render(request, "panel/no_account.html", status=403)
        return view(request, account, *args, **kwargs)

    return wrapper


# --- Rendering --------------------------------------------------------------------------------


def _respond(
    request: HttpRequest,
    account: AgentAccount,
    *,
    notice: Notice | None = None,
    bound: dict[str, Any] | None = None,
    dial_form: forms.DialForm | None = None,
) -> HttpResponse:
    """The workspace after an action, read fresh from MaxContact."""
    desk = desks.read_desk(account)
    context = workspaces.context(account, desk, notice=notice, bound=bound)
    # What other tabs get is this response's workspace without its notice: the same context,
    # computed once (it costs queries), unless it holds forms re-shown with this tab's input.
    # When it was published just now, this response is that HTML with the notice put back.
    published: list[str] = []
    context["version"] = _publish(
        account, desk, shared=None if bound else context, rendered=None if bound else published
    )
    if published:
        context["workspace_html"] = workspaces.response_from_live(published[0], context)
    if dial_form is not None:
        context["dial_form"] = dial_form
    if not getattr(request, "htmx", False):  # a plain form post (no JavaScript): whole page
        context.setdefault("dial_form", forms.DialForm(tenant=account.tenant))
        return render(request, PAGE, context)
    return render(request, f"{PAGE}#workspace-response", context)


def _publish(
    account: AgentAccount,
    desk: desks.Desk,
    *,
    acted: bool = True,
    shared: dict[str, Any] | None = None,
    rendered: list[str] | None = None,
) -> int | None:
    """Tell her other open panels (and the poller) what this response shows; its version.

    After an action the poller hurries and forgets past errors; a mere page load does not.
    Redis being down costs the other tabs their update, never this response.
    """
    try:

        def render(version: int) -> str:
            html = workspaces.render(account, desk, version=version, shared=shared)
            if rendered is not None:
                rendered.append(html)
            return html

        published = live.publish(account.pk, desk, render, acted=acted)
    except redis.RedisError:
        logger.warning("live updates unavailable: Redis did not answer")
        return None
    return published.version


def publish_page_state(account: AgentAccount, desk: desks.Desk) -> int | None:
    """A page load shares what it read with her other panels (no click: no hurry)."""
    return _publish(account, desk, acted=False)


def _fresh(form_class: type[forms.ActionForm], data: Any, **kwargs: Any) -> Any:
    """The submitted form again, to show its input, with a new key for the next attempt."""
    data = data.copy()
    prefix = kwargs.get("prefix")
    data[f"{prefix}-key" if prefix else "key"] = forms.new_key()
    form = form_class(data, **kwargs)
    form.is_valid()
    return form


# --- Pages ------------------------------------------------------------------------------------


@require_GET
@agent_required
def panel(request: HttpRequest, account: AgentAccount) -> HttpResponse:
    desk = desks.read_desk(account)
    context = workspaces.context(account, desk)
    context["version"] = _publish(account, desk, acted=False)
    context["dial_form"] = forms.DialForm(tenant=account.tenant)
    return render(request, PAGE, context)


@require_GET
@agent_required
def workspace(request: HttpRequest, account: AgentAccount) -> HttpResponse:
    desk = desks.read_desk(account)
    context = workspaces.context(account, desk)
    context["version"] = _publish(account, desk, acted=False)
    context["live"] = True  # nothing was clicked here: the notice on the page stays
    return render(request, f"{PAGE}#workspace", context)


def locked_out(
    request: HttpRequest, credentials: Any = None, *args: Any, **kwargs: Any
) -> HttpResponse:
    """django-axes: too many failed logins for this username or from this address."""
    minutes = round(settings.AXES_COOLOFF_TIME * 60)
    message = _(
        "Too many failed logins. Wait %(minutes)d minutes and try again, or ask your "
        "administrator to unlock your account."
    ) % {"minutes": minutes}
    slug = embedded_tenant(request)
    tenant = Tenant.objects.filter(slug=slug).first() if slug else None
    if tenant is not None:
        from .embedviews import problem

        return problem(request, tenant, message, status=429)
    return render(request, "panel/locked_out.html", {"message": message}, status=429)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    slug = embedded_tenant(request)
    if slug:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is not None and not getattr(request, "htmx", False):
            # The embedded login form without its CSRF cookie: the browser refused it here.
            from .embedviews import cookies_refused, problem

            return problem(request, tenant, cookies_refused(), cookies=True)
        reload_url = reverse("embed", args=[slug])
    else:
        reload_url = reverse("panel")
    return render(request, "panel/csrf_failure.html", {"reload_url": reload_url}, status=403)


# --- Actions ----------------------------------------------------------------------------------


def _refuse_unless_own_call(
    request: HttpRequest, account: AgentAccount, call_id: int, method: str
) -> HttpResponse | None:
    """None when the call is one of the agent's; otherwise the refusal, logged."""
    if account.calls.current().filter(call_id=call_id).exists():
        return None
    desk = desks.read_desk(account)  # it may have arrived since the page was drawn
    if desk.find(call_id) is not None:
        return None
    AuditEntry.objects.create(
        user=account.user,  # agent_required: the logged-in user owns this account
        account=account,
        remote_user_id=account.remote_user_id,
        method=method,
        call_id=call_id,
        parameters={"call_id": call_id},
        outcome=AuditEntry.Outcome.REFUSED,
        response_detail="not one of the agent's calls",
    )
    text = _("Call %(call)s is not one of your calls (it may have ended). Nothing was sent.")
    context = workspaces.context(account, desk, notice=Notice("error", text % {"call": call_id}))
    return render(request, f"{PAGE}#workspace-response", context)


def _perform(
    request: HttpRequest,
    account: AgentAccount,
    method: str,
    run: Callable[[], ActionResult],
    *,
    key: str,
    call_id: int | None = None,
    parameters: dict[str, Any] | None = None,
) -> Outcome:
    return desks.perform(
        account,
        method,
        run,
        user=request.user,
        key=key,
        call_id=call_id,
        parameters=parameters,
        request_id=getattr(request, "request_id", ""),
    )


def _bad_form() -> Notice:
    return Notice("error", _("That form was incomplete. Reload the page and try again."))


@require_POST
@agent_required
def go_ready(request: HttpRequest, account: AgentAccount) -> HttpResponse:
    form = forms.ActionForm(request.POST)
    if not form.is_valid():
        return _respond(request, account, notice=_bad_form())
    outcome = _perform(
        request,
        account,
        "goready",
        lambda: account.client().go_ready(),
        key=form.cleaned_data["key"],
    )
    return _respond(request, account, notice=Notice.of(outcome, _("You are ready for calls.")))


@require_POST
@agent_required
def dial(request: HttpRequest, account: AgentAccount) -> HttpResponse:
    form = forms.DialForm(request.POST, tenant=account.tenant)
    if not form.is_valid():
        # Nothing to ask MaxContact: only the form changes.
        response = render(request, f"{PAGE}#dial-form", {"dial_form": form})
        response["HX-Retarget"] = "#dial"
        response["HX-Reswap"] = "outerHTML"
        return response
    phone, lead_id = form.cleaned_data["phone"], form.cleaned_data["lead_id"]
    outcome = _perform(
        request,
        account,
        "dial",
        lambda: account.client().dial(phone=phone, lead_id=lead_id),
        key=form.cleaned_data["key"],
        parameters={"phone": phone, "lead_id": lead_id},
    )
    notice = Notice.of(outcome, _("Dialling %(phone)s.") % {"phone": phone})
    # Success clears the number; a failure keeps what the agent typed.
    next_form = (
        forms.DialForm(tenant=account.tenant)
        if outcome.ok
        else _fresh(forms.DialForm, request.POST, tenant=account.tenant)
    )
    return _respond(request, account, notice=notice, dial_form=next_form)


CALL_ACTIONS: dict[str, Callable[[Any, int], ActionResult]] = {
    "hangup": lambda client, call_id: client.hangup(call_id=call_id),
    "hold": lambda client, call_id: client.hold(call_id=call_id),
    "retrieve": lambda client, call_id: client.retrieve(call_id=call_id),
    "stoprecord": lambda client, call_id: client.stop_record(call_id=call_id),
    "startrecord": lambda client, call_id: client.start_record(call_id=call_id),
}


def _success_text(method: str) -> str:
    return {
        "hangup": _("Call ended."),
        "hold": _("Call on hold."),
        "retrieve": _("Call taken off hold."),
        "stoprecord": _("Recording paused. Resume it when the sensitive part is over."),
        "startrecord": _("Recording resumed."),
    }[method]


@require_POST
@agent_required
def call_action(
    request: HttpRequest, account: AgentAccount, call_id: int, method: str
) -> HttpResponse:
    form = forms.ActionForm(request.POST)
    if not form.is_valid():
        return _respond(request, account, notice=_bad_form())
    refusal = _refuse_unless_own_call(request, account, call_id, method)
    if refusal is not None:
        return refusal
    run = CALL_ACTIONS[method]
    outcome = _perform(
        request,
        account,
        method,
        lambda: run(account.client(), call_id),
        key=form.cleaned_data["key"],
        call_id=call_id,
        parameters={"call_id": call_id},
    )
    return _respond(request, account, notice=Notice.of(outcome, _success_text(method)))


@require_POST
@agent_required
def dispose(request: HttpRequest, account: AgentAccount, call_id: int) -> HttpResponse:
    refusal = _refuse_unless_own_call(request, account, call_id, "dispose")
    if refusal is not None:
        return refusal
    codes, codes_error = workspaces.result_codes(account)
    choices = forms.result_code_choices(codes, account.tenant.result_code_labels)
    prefix = f"c{call_id}"
    form = forms.DisposeForm(request.POST, choices=choices, prefix=prefix)
    if not form.is_valid():
        notice = Notice("error", codes_error or _("Choose a result for the call."))
        return _respond(request, account, notice=notice, bound={f"dispose-{call_id}": form})
    code, notes = form.cleaned_data["result_code"], form.cleaned_data["notes"]
    outcome = _perform(
        request,
        account,
        "dispose",
        lambda: account.client().dispose(call_id=call_id, result_code=code),
        key=form.cleaned_data["key"],
        call_id=call_id,
        parameters={"call_id": call_id, "result_code": code, "notes": notes},
    )
    label = dict(choices).get(code, code)
    notice = Notice.of(outcome, _("Call finished as “%(result)s”.") % {"result": label})
    bound = {}
    if not outcome.ok:  # keep the chosen result and the notes for another try
        bound[f"dispose-{call_id}"] = _fresh(
            forms.DisposeForm, request.POST, choices=choices, prefix=prefix
        )
    return _respond(request, account, notice=notice, bound=bound)


# --- Leads ------------------------------------------------------------------------------------


def _lead_panel(
    request: HttpRequest,
    account: AgentAccount,
    call_id: int,
    *,
    lead_id: int | None = None,
    notice: Notice | None = None,
    new_lead_form: forms.NewLeadForm | None = None,
) -> HttpResponse:
    """The lead phones of a call's lead, each one a place the call can be moved to."""
    tracked = account.calls.current().filter(call_id=call_id).first()
    lookup = forms.LeadLookupForm(request.GET or None)
    if lead_id is None and tracked is not None:
        lead_id = tracked.lead_id
    if lookup.is_bound and lookup.is_valid():
        lead_id = lookup.cleaned_data["lead"]
    context: dict[str, Any] = {
        "call_id": call_id,
        "lead_id": lead_id,
        "lookup": lookup,
        "phones": [],
        "error": "",
        "notice": notice,
        "new_lead_form": new_lead_form or forms.NewLeadForm(tenant=account.tenant),
        "tenant": account.tenant,
    }
    if tracked is None:
        context["error"] = _("Call %(call)s is not one of your calls.") % {"call": call_id}
    elif lead_id is not None:
        try:
            phones = account.client().lead_phones(lead_id=lead_id)
        except MaxContactError as error:
            context["error"] = error.agent_message
        else:
            context["phones"] = [(phone, forms.ChangeLeadForm()) for phone in phones]
            context["missing_ids"] = any(p.lead_phone_id is None for p in phones)
    return render(request, f"{PAGE}#lead-panel", context)


@require_GET
@agent_required
def lead_panel(request: HttpRequest, account: AgentAccount, call_id: int) -> HttpResponse:
    return _lead_panel(request, account, call_id)


@require_POST
@agent_required
def change_lead(request: HttpRequest, account: AgentAccount, call_id: int) -> HttpResponse:
    form = forms.ChangeLeadForm(request.POST)
    if not form.is_valid():
        return _respond(request, account, notice=_bad_form())
    refusal = _refuse_unless_own_call(request, account, call_id, "changelead")
    if refusal is not None:
        return refusal
    lead_phone_id = form.cleaned_data["lead_phone_id"]
    outcome = _perform(
        request,
        account,
        "changelead",
        lambda: account.client().change_lead(call_id=call_id, lead_phone_id=lead_phone_id),
        key=form.cleaned_data["key"],
        call_id=call_id,
        parameters={"call_id": call_id, "lead_phone_id": lead_phone_id},
    )
    return _respond(request, account, notice=Notice.of(outcome, _("Call moved to that lead.")))


@require_POST
@agent_required
def new_lead(request: HttpRequest, account: AgentAccount, call_id: int) -> HttpResponse:
    """Create a lead for the call. The form lives in the lead panel: a failure answers there,
    with the number kept; a success answers with the whole workspace."""
    form = forms.NewLeadForm(request.POST, tenant=account.tenant)
    if not form.is_valid():
        return _lead_panel(request, account, call_id, new_lead_form=form)
    refusal = _refuse_unless_own_call(request, account, call_id, "createnewlead")
    if refusal is not None:
        return _retargeted(refusal)
    phone = form.cleaned_data["phone"]
    outcome = _perform(
        request,
        account,
        "createnewlead",
        lambda: account.client().create_new_lead(call_id=call_id, phone=phone),
        key=form.cleaned_data["key"],
        call_id=call_id,
        parameters={"call_id": call_id, "phone": phone},
    )
    text = _("New lead created for %(phone)s and given this call.") % {"phone": phone}
    notice = Notice.of(outcome, text)
    if not outcome.ok:
        kept = _fresh(forms.NewLeadForm, request.POST, tenant=account.tenant)
        return _lead_panel(request, account, call_id, notice=notice, new_lead_form=kept)
    return _retargeted(_respond(request, account, notice=notice))


def _retargeted(response: HttpResponse) -> HttpResponse:
    """Send a response meant for the workspace there, whatever the form targeted."""
    response["HX-Retarget"] = "#workspace"
    response["HX-Reswap"] = "innerHTML"
    return response


# --- Warm transfer (hold + dial, then connectcalls) -------------------------------------------


@require_POST
@agent_required
def transfer_start(request: HttpRequest, account: AgentAccount, call_id: int) -> HttpResponse:
    """Step 1: hold the customer and dial the third party."""
    form = forms.TransferStartForm(request.POST, tenant=account.tenant)
    if not form.is_valid():
        notice = Notice(
            "error", " ".join(str(e) for e in form.errors.get("phone", [])) or _bad_form().text
        )
        return _respond(request, account, notice=notice, bound={"transfer_start": form})
    refusal = _refuse_unless_own_call(request, account, call_id, "hold")
    if refusal is not None:
        return refusal
    key, phone = form.cleaned_data["key"], form.cleaned_data["phone"]
    tracked = account.calls.current().filter(call_id=call_id).first()
    if tracked is None:  # it ended a moment ago
        return _respond(
            request, account, notice=Notice("error", _("That call has ended. Nothing was sent."))
        )
    if not tracked.held:
        held = _perform(
            request,
            account,
            "hold",
            lambda: account.client().hold(call_id=call_id),
            key=f"{key}:hold",
            call_id=call_id,
            parameters={"call_id": call_id},
        )
        if not held.ok:
            notice = Notice.of(held, "")
            notice.text = _("Could not hold the customer, so nothing was dialled. ") + notice.text
            return _respond(
                request,
                account,
                notice=notice,
                bound={
                    "transfer_start": _fresh(
                        forms.TransferStartForm, request.POST, tenant=account.tenant
                    )
                },
            )
    dialled = _perform(
        request,
        account,
        "dial",
        lambda: account.client().dial(phone=phone),
        key=f"{key}:dial",
        parameters={"phone": phone, "transfer_from": call_id},
    )
    text = _(
        "The customer is on hold and %(phone)s is being dialled. When they answer, introduce "
        "the call, then connect the two calls."
    ) % {"phone": phone}
    notice = Notice.of(dialled, text)
    bound = {}
    if not dialled.ok:
        notice.text = _("The customer is on hold, but the transfer call failed: ") + notice.text
        bound["transfer_start"] = _fresh(
            forms.TransferStartForm, request.POST, tenant=account.tenant
        )
    return _respond(request, account, notice=notice, bound=bound)


@require_POST
@agent_required
def transfer_complete(request: HttpRequest, account: AgentAccount) -> HttpResponse:
    """Step 2: bridge the two calls (connectcalls), each with its result code."""
    codes, codes_error = workspaces.result_codes(account)
    form = forms.TransferCompleteForm(
        request.POST, codes=codes, labels=account.tenant.result_code_labels
    )
    if not form.is_valid():
        notice = Notice("error", codes_error or _("Choose a result for each call."))
        return _respond(request, account, notice=notice, bound={"transfer": form})
    data = form.cleaned_data
    for call_id in (data["call1"], data["call2"]):
        refusal = _refuse_unless_own_call(request, account, call_id, "connectcalls")
        if refusal is not None:
            return refusal
    parameters = {
        name: data[name]
        for name in (
            "call1",
            "call2",
            "result_code1",
            "result_code2",
            "notes1",
            "notes2",
            "num_sales1",
            "num_sales2",
        )
    }
    outcome = _perform(
        request,
        account,
        "connectcalls",
        lambda: account.client().connect_calls(
            call1_id=data["call1"],
            call2_id=data["call2"],
            result_code1=data["result_code1"],
            result_code2=data["result_code2"],
            notes1=data["notes1"] or None,
            notes2=data["notes2"] or None,
            num_sales1=data["num_sales1"],
            num_sales2=data["num_sales2"],
        ),
        key=data["key"],
        call_id=data["call1"],
        parameters=parameters,
    )
    notice = Notice.of(outcome, _("The two calls are connected: the transfer is complete."))
    bound = {}
    if not outcome.ok:
        bound["transfer"] = _fresh(
            forms.TransferCompleteForm,
            request.POST,
            codes=codes,
            labels=account.tenant.result_code_labels,
        )
    return _respond(request, account, notice=notice, bound=bound)


# --- Directory --------------------------------------------------------------------------------

DIRECTORY: dict[str, Callable[[AgentAccount], list[Any]]] = {
    "campaigns": directory.campaigns,
    "queues": directory.acd_queues,
    "users": directory.users,
    "resultcodes": directory.result_codes,
}


@require_GET
@agent_required
def directory_panel(request: HttpRequest, account: AgentAccount, kind: str) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    context: dict[str, Any] = {
        "kind": kind,
        "query": query,
        "items": [],
        "error": "",
        "tenant": account.tenant,
    }
    try:
        items = DIRECTORY[kind](account)
    except MaxContactError as error:
        context["error"] = error.agent_message
    else:
        if kind == "users" and query:
            lowered = query.lower()
            items = [u for u in items if lowered in u.full_name.lower() or query == str(u.id)]
        context["items"] = items
    return render(request, f"{PAGE}#directory-{kind}", context)
