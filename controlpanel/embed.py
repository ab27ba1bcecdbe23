"""The panel inside a CRM's iframe: who may frame it, and how it stays logged in there.

- `PartitionedCookieMiddleware` adds the `Partitioned` attribute (CHIPS) that Django 5.2 and
  Python 3.11 cannot write, so the session and CSRF cookies survive in a cross-site iframe of
  a browser that blocks third-party cookies.
- `allow_framing` lets the tenant's CRM origins, and no one else, frame an embeddable page.
- Launch links: a CRM's server signs a short-lived, single-use link naming the agent; the page
  it opens gets a *panel token* instead of relying on a cookie. The page sends that token in
  the `X-Panel-Token` header on every request, the SSE stream included, and
  `HeaderTokenMiddleware` turns it back into the agent's user.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import cookies
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from telephony.encryption import UndecryptableSecret
from telephony.models import AgentAccount, Tenant

from .middleware import Middleware
from .models import UsedLaunchLink

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Panel-Token"  # noqa: S105 (a header name)
EMBED_HEADER = "X-Panel-Embed"  # the embed page's tenant, so a lost login goes back to it
TOKEN_SALT = "controlpanel.embed.token"  # noqa: S105 (a signing namespace)
API_VERSION = 1
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,50}")
NONCE = re.compile(r"[-A-Za-z0-9_]{16,64}")
CLOCK_SKEW = 30  # seconds a CRM server's clock may run ahead of ours

# --- Cookies ----------------------------------------------------------------------------------

# Python 3.14 knows the flag; 3.11 must be taught it once, here, before any cookie is written.
if "partitioned" not in cookies.Morsel._reserved:  # type: ignore[attr-defined]
    cookies.Morsel._reserved["partitioned"] = "Partitioned"  # type: ignore[attr-defined]
    cookies.Morsel._flags.add("partitioned")  # type: ignore[attr-defined]


def partition_cookies(response: HttpResponseBase) -> None:
    """Mark every `SameSite=None; Secure` cookie of the response `Partitioned`."""
    for morsel in response.cookies.values():
        if morsel["secure"] and str(morsel["samesite"]).lower() == "none":
            morsel["partitioned"] = True


class PartitionedCookieMiddleware(Middleware):
    """Outermost middleware: its response hook runs after session and CSRF set cookies."""

    def after(self, request: HttpRequest, response: HttpResponseBase, state: Any) -> None:
        if settings.EMBEDDING:
            partition_cookies(response)


# --- Framing ----------------------------------------------------------------------------------


def allow_framing(response: HttpResponseBase, tenant: Tenant | None) -> HttpResponseBase:
    """Let this page be framed by the panel itself and the tenant's CRM origins only."""
    origins = tenant.frame_origins if tenant is not None and settings.EMBEDDING else []
    response._csp_replace = {"frame-ancestors": ["'self'", *origins]}  # type: ignore[attr-defined]
    response.xframe_options_exempt = True  # type: ignore[attr-defined]
    return response


# --- Launch links -----------------------------------------------------------------------------


class LaunchRefused(Exception):
    """A launch link that cannot open the panel. `agent_message` says what to do."""

    def __init__(self, reason: str, agent_message: Any) -> None:
        super().__init__(reason)
        self.reason = reason  # for the log: never a secret, never the signature
        self.agent_message = agent_message


EXPIRED = _("This link to the panel has expired or was already used. Reload the CRM page.")
INVALID = _("This link to the panel is not valid. Ask your administrator to check the CRM setup.")


def launch_signature(secret: str, tenant_slug: str, agent: str, expires: int, nonce: str) -> str:
    """What a CRM's server computes (docs/embedding.md has the recipe in other languages)."""
    message = f"v1\n{tenant_slug}\n{agent}\n{expires}\n{nonce}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Launch:
    agent: str
    expires: int
    nonce: str
    signature: str


def parse_launch(params: Mapping[str, str]) -> Launch:
    agent = params.get("agent", "")
    nonce = params.get("nonce", "")
    signature = params.get("signature", "").lower()
    try:
        expires = int(params.get("expires", ""))
    except ValueError:
        raise LaunchRefused("malformed expires", INVALID) from None
    if not agent or len(agent) > 150 or not NONCE.fullmatch(nonce):
        raise LaunchRefused("malformed agent or nonce", INVALID)
    if not re.fullmatch(r"[0-9a-f]{64}", signature):
        raise LaunchRefused("malformed signature", INVALID)
    return Launch(agent, expires, nonce, signature)


def redeem_launch(tenant: Tenant, params: Mapping[str, str]) -> AgentAccount:
    """The agent a launch link opens the panel for; the link is used up by this call."""
    launch = parse_launch(params)
    try:
        secret = tenant.launch_secret()
    except UndecryptableSecret:
        raise LaunchRefused("launch secret does not decrypt", INVALID) from None
    if not secret:
        raise LaunchRefused("launch links are off for this tenant", INVALID)
    expected = launch_signature(secret, tenant.slug, launch.agent, launch.expires, launch.nonce)
    if not constant_time_compare(expected, launch.signature):
        raise LaunchRefused("bad signature", INVALID)
    now = timezone.now()
    lifetime = settings.EMBED_LAUNCH_MAX_SECONDS
    if launch.expires < now.timestamp():
        raise LaunchRefused("expired", EXPIRED)
    if launch.expires > now.timestamp() + lifetime + CLOCK_SKEW:
        raise LaunchRefused(f"lives longer than {lifetime} s", INVALID)
    account = (
        AgentAccount.objects.select_related("user", "tenant")
        .filter(tenant=tenant, user__username=launch.agent, is_active=True, user__is_active=True)
        .first()
    )
    if account is None:
        raise LaunchRefused("no active agent of this tenant by that name", INVALID)
    try:
        with transaction.atomic():
            UsedLaunchLink.objects.filter(expires_at__lt=now - timedelta(minutes=1)).delete()
            UsedLaunchLink.objects.create(
                tenant=tenant,
                nonce=launch.nonce,
                expires_at=datetime.fromtimestamp(launch.expires, tz=UTC),
            )
    except IntegrityError:
        raise LaunchRefused("already used", EXPIRED) from None
    return account


# --- Panel tokens (the header that stands in for a refused cookie) -----------------------------


def _auth_hash(account: AgentAccount) -> str:
    # Changing the agent's panel password (or deactivating her) ends every token she holds.
    return account.user.get_session_auth_hash()[:32]


def issue_token(account: AgentAccount) -> str:
    return signing.dumps({"a": account.pk, "h": _auth_hash(account)}, salt=TOKEN_SALT)


def _payload(token: str) -> dict[str, Any] | None:
    """What a well-signed, unexpired panel token says; None for anything else."""
    try:
        payload = signing.loads(token, salt=TOKEN_SALT, max_age=settings.EMBED_TOKEN_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("a"), int):
        return None
    return payload


def _account_for(payload: dict[str, Any]) -> AgentAccount | None:
    account = (
        AgentAccount.objects.select_related("user", "tenant")
        .filter(pk=payload["a"], is_active=True, user__is_active=True)
        .first()
    )
    if account is None or not constant_time_compare(_auth_hash(account), str(payload.get("h"))):
        return None
    return account


def account_for_token(token: str) -> AgentAccount | None:
    """The active agent account a panel token names, or None (bad, expired or revoked)."""
    payload = _payload(token)
    return _account_for(payload) if payload is not None else None


class HeaderTokenMiddleware(Middleware):
    """A request with a valid `X-Panel-Token` acts as the agent the token names.

    Place it after AuthenticationMiddleware. Such a request needs no CSRF token: a browser
    never adds this header by itself, and another site cannot read or guess it. The
    signature is checked here; the database is read only when the user is asked for.
    """

    def before(self, request: HttpRequest) -> None:
        token = request.headers.get(TOKEN_HEADER)
        payload = _payload(token) if token else None
        if payload is None:
            return

        def user() -> Any:
            account = _account_for(payload)
            return account.user if account is not None else AnonymousUser()

        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        request.user = SimpleLazyObject(user)  # type: ignore[assignment]
        request.auser = _async_user(user)
        request.panel_token = token  # type: ignore[attr-defined]


def _async_user(user: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def auser() -> Any:
        return await sync_to_async(user)()

    return auser
