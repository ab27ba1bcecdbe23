"""The pages a CRM frames: /embed/<tenant>/ (panel or login), its launch link and resume.

Only these pages (and the panel's own requests from them) may be framed, and only by the
tenant's allowed origins. Nothing here can loop: a login whose cookie the browser refused, a
used launch link or a lapsed token each end on a page that says what happened and offers the
panel in its own window.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from telephony import desk as desks
from telephony.models import AgentAccount, Tenant

from . import embed, forms
from . import workspace as workspaces
from .views import publish_page_state
from .workspace import PAGE

logger = logging.getLogger(__name__)


def _tenant(slug: str) -> Tenant:
    return get_object_or_404(Tenant, slug=slug)


def _account_of(request: HttpRequest) -> AgentAccount | None:
    if request.user.pk is None:
        return None
    return (
        AgentAccount.objects.select_related("tenant", "user")
        .filter(user_id=request.user.pk, is_active=True)
        .first()
    )


def embed_context(request: HttpRequest, tenant: Tenant, token: str = "") -> dict[str, Any]:
    """What the embedded page and its script need: the tenant, its origins, the token."""
    full = request.GET.get("layout") == "full"
    data = {
        "tenant": tenant.slug,
        "origins": tenant.frame_origins,
        "token": token,
        "version": embed.API_VERSION,
        "compact": not full,
        "url": reverse("embed", args=[tenant.slug]) + ("?layout=full" if full else ""),
        "resumeUrl": reverse("embed-resume", args=[tenant.slug]),
        "csrfCookie": settings.CSRF_COOKIE_NAME,
        # Names this page on its live stream: the CRM channel's owner is a page, so a stream
        # that reconnects keeps the channel.
        "page": uuid.uuid4().hex,
    }
    return {"embed": data, "embed_json": json.dumps(data)}


def _framed(
    request: HttpRequest,
    tenant: Tenant,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    token: str = "",
) -> HttpResponse:
    """A page of the frame: never cached, framable by the tenant's CRM origins only."""
    context = {"tenant": tenant, **context, **embed_context(request, tenant, token)}
    response = render(request, template, context, status=status)
    response["Cache-Control"] = "no-store"
    return embed.allow_framing(response, tenant)  # type: ignore[return-value]


def problem(
    request: HttpRequest, tenant: Tenant, message: Any, *, status: int = 403, **extra: Any
) -> HttpResponse:
    """A page that says what went wrong in the frame and offers the panel in its own window."""
    return _framed(
        request, tenant, "panel/embed_problem.html", {"message": message, **extra}, status
    )


def _panel(
    request: HttpRequest, account: AgentAccount, tenant: Tenant, token: str = ""
) -> HttpResponse:
    if account.tenant_id != tenant.pk:
        return problem(
            request,
            tenant,
            _("You are logged in as an agent of another MaxContact tenant than this CRM's."),
            logout=True,
        )
    desk = desks.read_desk(account)
    context = workspaces.context(account, desk)
    context["version"] = publish_page_state(account, desk)
    context["dial_form"] = forms.DialForm(tenant=account.tenant)
    return _framed(request, tenant, PAGE, context, token=token)


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def embedded(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """The panel as a CRM frames it; its own login form when nobody is logged in."""
    tenant = _tenant(tenant_slug)
    if request.user.is_authenticated:
        account = _account_of(request)
        if account is None:
            return problem(
                request, tenant, _("No MaxContact agent account is linked to you."), logout=True
            )
        return _panel(request, account, tenant, getattr(request, "panel_token", ""))
    if request.method == "POST":
        form = AuthenticationForm(request, data=request.POST)
        if form.is_valid():
            auth_login(request, form.get_user())
            # Come back with a marker: arriving logged out with it means the cookie was refused.
            # 303: the browser fetches the page with a GET (a reload never re-posts the form).
            done = HttpResponseRedirect(f"{reverse('embed', args=[tenant.slug])}?signed_in=1")
            done.status_code = 303
            return done
    else:
        form = AuthenticationForm(request)
        if request.GET.get("signed_in"):
            return problem(request, tenant, cookies_refused(), status=200, cookies=True)
    return _framed(request, tenant, "panel/login.html", {"form": form})


def cookies_refused() -> str:
    return _(
        "The panel could not keep you logged in inside this CRM page: your browser did not "
        "store its cookie here."
    )


@never_cache
@require_GET
def launch(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """Open the panel from a launch link signed by the CRM's server (docs/embedding.md)."""
    tenant = _tenant(tenant_slug)
    try:
        account = embed.redeem_launch(tenant, request.GET)
    except embed.LaunchRefused as refused:
        logger.warning("launch link refused tenant=%s reason=%s", tenant.slug, refused.reason)
        return problem(request, tenant, refused.agent_message)
    logger.info("launch link used tenant=%s account=%s", tenant.slug, account.pk)
    return _panel(request, account, tenant, embed.issue_token(account))


@csrf_exempt  # the token in the body is the credential; the Origin check below stops others
@never_cache
@require_POST
def resume(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """The frame reloaded without a cookie: its script posts back the token it kept."""
    tenant = _tenant(tenant_slug)
    origin = request.headers.get("Origin", "")
    if urlsplit(origin).netloc != request.get_host():
        return problem(request, tenant, _("That request did not come from the panel."))
    account = embed.account_for_token(request.POST.get("token", ""))
    if account is None:
        form = AuthenticationForm(request)
        return _framed(
            request,
            tenant,
            "panel/login.html",
            {"form": form, "lapsed": True},
        )
    return _panel(request, account, tenant, request.POST["token"])
