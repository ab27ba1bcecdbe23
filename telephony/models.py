"""Tenants (a MaxContact instance) and agent accounts (who an agent is there, and her secrets).

Secrets live only in the `*_encrypted` columns (Fernet, see `telephony.encryption`). They are
set through `set_password` / `set_static_token`, read only to build a client, and never shown
back anywhere: not in the admin, a log line, an error message or a repr.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from . import encryption, wire
from .client import ClientConfig, Credentials, MaxContactClient
from .entities import Token


def default_auth_failure_codes() -> list[int]:
    return [401]


def default_lead_phone_id_fields() -> list[str]:
    return list(wire.WireOptions().lead_phone_id_fields)


def default_token_expiry_fields() -> list[str]:
    return list(wire.WireOptions().token_expiry_fields)


def default_connect_timeout() -> float:
    return float(settings.MAXCONTACT_CONNECT_TIMEOUT)


def default_read_timeout() -> float:
    return float(settings.MAXCONTACT_READ_TIMEOUT)


def validate_base_url(value: str) -> None:
    """HTTPS only: the password and the token travel in every request. Loopback (the
    simulator, a local tunnel) may use plain HTTP."""
    parts = urlsplit(value)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}:
        return
    raise ValidationError(
        _("Use https:// (plain http is allowed only for 127.0.0.1 and localhost).")
    )


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            _("%(value)s is not a known time zone"), params={"value": value}
        ) from None


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ORIGIN = re.compile(
    rf"(?P<scheme>https?)://(?P<host>{_LABEL}(?:\.{_LABEL})*|\[::1\])(?::(?P<port>[0-9]{{1,5}}))?"
)
_LOOPBACK = {"localhost", "127.0.0.1", "[::1]"}


def normalise_origin(value: str) -> str:
    """An exact web origin (`https://crm.example.com[:port]`), lower-case, without a slash.

    Origins go into a CSP header and are compared exactly with `MessageEvent.origin`, so
    anything else (a path, a wildcard, a space, a `;`) is refused, not interpreted. Plain http
    is allowed only for this machine (development).
    """
    candidate = value.strip().lower().removesuffix("/")
    match = _ORIGIN.fullmatch(candidate)
    if match is None:
        raise ValidationError(
            _("%(value)s is not an origin like https://crm.example.com"), params={"value": value}
        )
    if match["scheme"] == "http" and match["host"] not in _LOOPBACK:
        raise ValidationError(
            _("%(value)s: use https:// (plain http only for localhost)"), params={"value": value}
        )
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        raise ValidationError(_("%(value)s has no valid port"), params={"value": value})
    if port is not None and int(port) == {"https": 443, "http": 80}[match["scheme"]]:
        # Browsers leave the default port out of an origin: so must we, to compare exactly.
        return f"{match['scheme']}://{match['host']}"
    return f"{match['scheme']}://{match['host']}" + (f":{int(port)}" if port else "")


MEANINGS = {
    "call_state_meanings": {"ringing", "talking", "held", "ended"},
    "call_status_meanings": {"inbound", "outbound"},
    "recording_state_meanings": {"recording", "stopped", "off"},
}


class Tenant(models.Model):
    """One MaxContact instance, reached at `https://<customer>.maxcontact.com/webservices`."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(
        _("name in embed links"),
        max_length=50,
        unique=True,
        help_text=_("The CRM frames the panel at /embed/<this name>/."),
    )
    base_url = models.URLField(
        _("MaxContact base URL"),
        validators=[validate_base_url],
        help_text=_("For example https://acme.maxcontact.com/webservices"),
    )
    connect_timeout = models.FloatField(
        _("connect timeout (s)"),
        default=default_connect_timeout,
        validators=[MinValueValidator(0.1)],
    )
    read_timeout = models.FloatField(
        _("read timeout (s)"), default=default_read_timeout, validators=[MinValueValidator(0.1)]
    )
    ask_for_json = models.BooleanField(
        _("ask for JSON"),
        default=True,
        help_text=_("Send Content-Type: application/json. XML answers are read either way."),
    )
    token_lifetime_seconds = models.PositiveIntegerField(
        _("token lifetime (s)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(120)],
        help_text=_(
            "MaxContact does not document it. Leave empty to reuse a token until it is refused."
        ),
    )
    auth_failure_codes = models.JSONField(
        _("ResponseCodes meaning 'log in again'"),
        default=default_auth_failure_codes,
        blank=True,
        help_text=_(
            "A Success=false answer with one of these codes is treated as an expired "
            "token (HTTP 401/403 always is)."
        ),
    )
    lead_phone_id_fields = models.JSONField(
        _("lead phone id field names"),
        default=default_lead_phone_id_fields,
        blank=True,
        help_text=_("Fields of a Lead Phone that may carry the id changelead takes, in order."),
    )
    token_expiry_fields = models.JSONField(
        _("token expiry field names"), default=default_token_expiry_fields, blank=True
    )
    naive_time_zone = models.CharField(
        _("time zone of dates sent without one"),
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
    )
    default_region = models.CharField(
        _("default phone region"),
        max_length=2,
        default="GB",
        help_text=_("ISO country code used to read numbers typed without +country code."),
    )
    dial_format = models.CharField(
        _("send numbers as"),
        max_length=8,
        choices=[
            ("national", _("national digits (07700900123)")),
            ("e164", _("E.164 (+447700900123)")),
        ],
        default="national",
    )
    after_last_call = models.CharField(
        _("agent state after her last call is disposed"),
        max_length=8,
        choices=[("unknown", _("unknown (show 'not ready')")), ("ready", _("ready"))],
        default="unknown",
        help_text=_("MaxContact does not say; set 'ready' if agents return to ready."),
    )
    call_state_meanings = models.JSONField(
        _("CallState meanings"),
        default=dict,
        blank=True,
        help_text=_('Value to meaning: ringing, talking, held or ended, e.g. {"3": "held"}.'),
    )
    call_status_meanings = models.JSONField(
        _("CallStatus meanings"),
        default=dict,
        blank=True,
        help_text=_('Value to meaning: inbound or outbound, e.g. {"1": "inbound"}.'),
    )
    recording_state_meanings = models.JSONField(
        _("RecordingState meanings"),
        default=dict,
        blank=True,
        help_text=_('Value to meaning: recording, stopped or off, e.g. {"2": "stopped"}.'),
    )
    call_state_labels = models.JSONField(_("CallState labels"), default=dict, blank=True)
    call_status_labels = models.JSONField(_("CallStatus labels"), default=dict, blank=True)
    recording_state_labels = models.JSONField(_("RecordingState labels"), default=dict, blank=True)
    result_code_labels = models.JSONField(_("result code labels"), default=dict, blank=True)
    allowed_origins = models.JSONField(
        _("CRM origins allowed to embed the panel"),
        default=list,
        blank=True,
        help_text=_(
            'Exact origins, e.g. ["https://acme.my.salesforce.com"]: only these may frame '
            "the panel and talk to it."
        ),
    )
    #: The secret a CRM's server signs launch links with (see docs/embedding.md). Write-only.
    launch_secret_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.slug:
            base = slugify(self.name)[:40] or "tenant"
            self.slug, n = base, 1
            while Tenant.objects.filter(slug=self.slug).exclude(pk=self.pk).exists():
                n += 1
                self.slug = f"{base}-{n}"
        super().save(*args, **kwargs)

    @property
    def has_launch_secret(self) -> bool:
        return bool(self.launch_secret_encrypted)

    def set_launch_secret(self, secret: str) -> None:
        self.launch_secret_encrypted = encryption.encrypt(secret) if secret else ""

    def launch_secret(self) -> str:
        """The launch-link signing secret, decrypted; empty when launch links are off."""
        if not self.launch_secret_encrypted:
            return ""
        return encryption.decrypt(self.launch_secret_encrypted)

    @property
    def frame_origins(self) -> list[str]:
        """The allowed origins that are valid (the admin form normalises them when saved)."""
        valid = []
        for value in self.allowed_origins or []:
            try:
                valid.append(normalise_origin(value))
            except (ValidationError, AttributeError):
                continue
        return valid

    def clean(self) -> None:
        super().clean()
        errors: dict[str, Any] = {}
        if not isinstance(self.auth_failure_codes, list) or not all(
            isinstance(code, int) for code in self.auth_failure_codes
        ):
            errors["auth_failure_codes"] = _("Enter a list of whole numbers, e.g. [401].")
        for name in ("lead_phone_id_fields", "token_expiry_fields", "allowed_origins"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors[name] = _('Enter a list of strings, e.g. ["ID"].')
        if "allowed_origins" not in errors:
            try:
                self.allowed_origins = list(
                    dict.fromkeys(normalise_origin(v) for v in self.allowed_origins)
                )
            except ValidationError as error:
                errors["allowed_origins"] = error
        for name in (
            "call_state_labels",
            "call_status_labels",
            "recording_state_labels",
            "result_code_labels",
        ):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                errors[name] = _('Enter an object of labels, e.g. {"2": "Talking"}.')
        for name, allowed in MEANINGS.items():
            value = getattr(self, name)
            if not isinstance(value, dict) or not set(value.values()) <= allowed:
                errors[name] = _("Use only these meanings: %(allowed)s.") % {
                    "allowed": ", ".join(sorted(allowed))
                }
        try:
            phonenumbers.country_code_for_valid_region(self.default_region)
        except Exception:  # phonenumbers raises a bare Exception for unknown regions
            errors["default_region"] = _("Enter a two-letter country code such as GB or US.")
        if errors:
            raise ValidationError(errors)

    def client_config(self) -> ClientConfig:
        return ClientConfig(
            base_url=self.base_url,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            ask_for_json=self.ask_for_json,
            auth_failure_codes=frozenset(int(c) for c in self.auth_failure_codes or []),
            token_lifetime=(
                timedelta(seconds=self.token_lifetime_seconds)
                if self.token_lifetime_seconds
                else None
            ),
            wire=wire.WireOptions(
                lead_phone_id_fields=wire.iter_names(self.lead_phone_id_fields or []),
                token_expiry_fields=wire.iter_names(self.token_expiry_fields or []),
                naive_time_zone=zoneinfo.ZoneInfo(self.naive_time_zone or "UTC"),
            ),
        )


class AgentAccountQuerySet(models.QuerySet["AgentAccount"]):
    def with_undecryptable_secrets(self) -> list[int]:
        """Primary keys of accounts holding credentials that no configured key opens."""
        unreadable = []
        for account in self.only(*AgentAccount.CREDENTIAL_FIELDS):
            for name in AgentAccount.CREDENTIAL_FIELDS:
                ciphertext = getattr(account, name)
                if not ciphertext:
                    continue
                try:
                    encryption.decrypt(ciphertext)
                except encryption.UndecryptableSecret:
                    unreadable.append(account.pk)
                    break
        return unreadable


class AgentAccount(models.Model):
    """A panel user's identity at MaxContact: the remote `UserID` and how to get a token."""

    #: Secrets an admin entered: losing them needs an admin. The cached token is disposable.
    CREDENTIAL_FIELDS = ("password_encrypted", "static_token_encrypted")
    SECRET_FIELDS = (*CREDENTIAL_FIELDS, "cached_token_encrypted")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_account"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="agents")
    remote_user_id = models.PositiveIntegerField(
        _("MaxContact user id"), help_text=_("The UserID in every telephony URL.")
    )
    maxcontact_login = models.CharField(_("MaxContact login"), max_length=150, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    password_encrypted = models.TextField(blank=True, editable=False)
    static_token_encrypted = models.TextField(blank=True, editable=False)
    cached_token_encrypted = models.TextField(blank=True, editable=False)
    cached_token_obtained_at = models.DateTimeField(null=True, blank=True, editable=False)
    cached_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What the desk infers from getcalls (telephony.desk), rewritten by polls and actions.
    DESK_FIELDS = ("desk_state", "desk_state_since", "ready_before_call", "disposed_at")
    desk_state = models.CharField(max_length=16, default="unknown", editable=False)
    desk_state_since = models.DateTimeField(null=True, blank=True, editable=False)
    ready_before_call = models.BooleanField(default=False, editable=False)
    # When her latest disposition succeeded (written after its audit entry): the CRM state's
    # list of dispositions is cached on it (controlpanel.crm), and none is looked for when it
    # is older than that list's window.
    disposed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentAccountQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__name", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "remote_user_id"], name="one_account_per_remote_user"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} (MaxContact user {self.remote_user_id})"

    def __repr__(self) -> str:
        return f"<AgentAccount {self.pk} user={self.user_id} remote={self.remote_user_id}>"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """The desk fields are written by telephony.desk alone (with `update()`): saving an
        account read earlier (an admin's edit) must not put back her older state, or an
        older `disposed_at`, under which the CRM state's cache would miss a disposition."""
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name not in self.DESK_FIELDS
            ]
        super().save(*args, **kwargs)

    # --- Secrets (write-only from the outside) ---------------------------------------------

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)

    @property
    def has_static_token(self) -> bool:
        return bool(self.static_token_encrypted)

    def set_password(self, password: str) -> None:
        self.password_encrypted = encryption.encrypt(password) if password else ""
        self.forget_cached_token()

    def set_static_token(self, token: str) -> None:
        self.static_token_encrypted = encryption.encrypt(token) if token else ""
        self.forget_cached_token()

    def forget_cached_token(self) -> None:
        self.cached_token_encrypted = ""
        self.cached_token_obtained_at = None
        self.cached_token_expires_at = None

    def credentials(self) -> Credentials:
        return Credentials(
            login=self.maxcontact_login,
            password=encryption.decrypt(self.password_encrypted) if self.has_password else "",
            static_token=(
                encryption.decrypt(self.static_token_encrypted) if self.has_static_token else ""
            ),
        )

    def client(self) -> MaxContactClient:
        """A client acting as this agent, with the token cached (encrypted) on this row."""
        return MaxContactClient(
            self.tenant.client_config(),
            user_id=self.remote_user_id,
            credentials=self.credentials(),
            token_store=AccountTokenStore(self),
        )


class AccountTokenStore:
    """Keeps an account's MaxContact token encrypted in its row, shared by every process."""

    FIELDS = ("cached_token_encrypted", "cached_token_obtained_at", "cached_token_expires_at")

    def __init__(self, account: AgentAccount) -> None:
        self.account = account
        # The last ciphertext opened and its token: a poller asks for the token every second,
        # and decrypting it each time was a twentieth of a poll's CPU.
        self._opened: tuple[str, str] | None = None

    def load(self) -> Token | None:
        account = self.account
        ciphertext = account.cached_token_encrypted
        if not ciphertext or account.cached_token_obtained_at is None:
            return None
        if self._opened is not None and self._opened[0] == ciphertext:
            key = self._opened[1]
        else:
            try:
                key = encryption.decrypt(ciphertext)
            except encryption.UndecryptableSecret:
                return None  # a token is cheap to get again
            self._opened = (ciphertext, key)
        return Token(key, account.cached_token_obtained_at, account.cached_token_expires_at)

    def discard(self, key: str) -> None:
        """Forget a refused token, unless another process has already stored a newer one."""
        account = self.account
        current = self.load()
        if current is not None and current.key == key and account.pk is not None:
            AgentAccount.objects.filter(
                pk=account.pk, cached_token_encrypted=account.cached_token_encrypted
            ).update(
                cached_token_encrypted="",
                cached_token_obtained_at=None,
                cached_token_expires_at=None,
            )
        if account.pk is not None:
            # Pick up what is stored now: possibly a token another process just obtained.
            account.refresh_from_db(fields=AccountTokenStore.FIELDS)
        elif current is not None and current.key == key:
            account.forget_cached_token()

    def save(self, token: Token | None) -> None:
        account = self.account
        values: dict[str, Any]
        if token is None:
            values = {
                "cached_token_encrypted": "",
                "cached_token_obtained_at": None,
                "cached_token_expires_at": None,
            }
        else:
            values = {
                "cached_token_encrypted": encryption.encrypt(token.key),
                "cached_token_obtained_at": token.obtained_at,
                "cached_token_expires_at": token.expires_at,
            }
        for name, value in values.items():
            setattr(account, name, value)
        if account.pk is not None:
            AgentAccount.objects.filter(pk=account.pk).update(**values)


class AuditEntry(models.Model):
    """One action an agent asked MaxContact to perform, and what came of it. Append-only.

    `idempotency_key` is unique: the form that sends an action carries a fresh key, and the
    entry is written *before* MaxContact is called, so the same form sent twice (a double
    click, a retried request) can never reach MaxContact twice.
    """

    class Outcome(models.TextChoices):
        PENDING = "pending", _("sent, no answer yet")
        OK = "ok", _("done")
        REJECTED = "rejected", _("rejected by MaxContact")
        UNREACHABLE = "unreachable", _("MaxContact unreachable")
        UNCERTAIN = "uncertain", _("may or may not have happened")
        AUTHENTICATION = "authentication", _("login refused")
        MALFORMED = "malformed", _("unreadable answer")
        REFUSED = "refused", _("refused before sending")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    account = models.ForeignKey(
        AgentAccount, null=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    remote_user_id = models.PositiveIntegerField(_("MaxContact user id"))
    method = models.CharField(_("method"), max_length=32, db_index=True)
    call_id = models.BigIntegerField(_("call id"), null=True, blank=True)
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=Outcome.choices, default=Outcome.PENDING
    )
    response_code = models.IntegerField(_("ResponseCode"), null=True, blank=True)
    response_detail = models.TextField(_("ResponseDetail or error"), blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), null=True, blank=True)
    idempotency_key = models.CharField(max_length=64, unique=True, null=True, blank=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = _("audit entries")

    def __str__(self) -> str:
        return f"{self.method} by user {self.remote_user_id}: {self.outcome}"


class TrackedCallQuerySet(models.QuerySet["TrackedCall"]):
    def current(self) -> TrackedCallQuerySet:
        return self.filter(gone_at__isnull=True)


class TrackedCall(models.Model):
    """What the panel knows about a live call beyond what getcalls says.

    MaxContact's CallId restarts at 1000 whenever the platform restarts, so a row is one
    sighting of a call id, from its first appearance in getcalls until it leaves the list
    (`gone_at`). It holds what the vendor does not report reliably: whether the agent put
    the call on hold and whether she paused its recording (the vendor notes that its own
    agent UI does not show a recording stopped through the API).
    """

    account = models.ForeignKey(AgentAccount, on_delete=models.CASCADE, related_name="calls")
    call_id = models.BigIntegerField()
    first_seen_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    phone_number = models.CharField(max_length=40, blank=True)
    lead_id = models.BigIntegerField(null=True, blank=True)
    held = models.BooleanField(default=False)
    recording_paused = models.BooleanField(default=False)
    ended_seen_at = models.DateTimeField(null=True, blank=True)
    gone_at = models.DateTimeField(null=True, blank=True)

    objects = TrackedCallQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "call_id"],
                condition=models.Q(gone_at__isnull=True),
                name="one_current_sighting_per_call",
            )
        ]

    def __str__(self) -> str:
        return f"call {self.call_id} of account {self.account_id}"
