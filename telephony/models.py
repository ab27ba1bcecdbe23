"""Tenants (a MaxContact instance) and agent accounts (who an agent is there, and her secrets).

Secrets live only in the `*_encrypted` columns (Fernet, see `telephony.encryption`). They are
set through `set_password` / `set_static_token`, read only to build a client, and never shown
back anywhere: not in the admin, a log line, an error message or a repr.
"""

from __future__ import annotations

import zoneinfo
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
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


class Tenant(models.Model):
    """One MaxContact instance, reached at `https://<customer>.maxcontact.com/webservices`."""

    name = models.CharField(_("name"), max_length=100, unique=True)
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
    call_state_labels = models.JSONField(_("CallState labels"), default=dict, blank=True)
    call_status_labels = models.JSONField(_("CallStatus labels"), default=dict, blank=True)
    recording_state_labels = models.JSONField(_("RecordingState labels"), default=dict, blank=True)
    result_code_labels = models.JSONField(_("result code labels"), default=dict, blank=True)
    allowed_origins = models.JSONField(
        _("CRM origins allowed to embed the panel"), default=list, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

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
        for name in (
            "call_state_labels",
            "call_status_labels",
            "recording_state_labels",
            "result_code_labels",
        ):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                errors[name] = _('Enter an object of labels, e.g. {"2": "Talking"}.')
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

    def load(self) -> Token | None:
        account = self.account
        if not account.cached_token_encrypted or account.cached_token_obtained_at is None:
            return None
        try:
            key = encryption.decrypt(account.cached_token_encrypted)
        except encryption.UndecryptableSecret:
            return None  # a token is cheap to get again
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
