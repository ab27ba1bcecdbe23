"""Django admin for tenants and agent accounts. Secrets are write-only here.

A secret field always renders empty (never the value, never a masked prefix); typing in it
replaces the stored secret, leaving it empty keeps it, and a tick box clears it.
"""

from __future__ import annotations

import time
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_post_parameters

from . import wire
from .encryption import UndecryptableSecret
from .errors import MaxContactError
from .models import AgentAccount, AuditEntry, Tenant


class AgentAccountForm(forms.ModelForm):
    new_password = forms.CharField(
        label=_("MaxContact password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Write-only. Leave empty to keep the stored password."),
    )
    clear_password = forms.BooleanField(label=_("Remove the stored password"), required=False)
    new_static_token = forms.CharField(
        label=_("MaxContact token (instead of a password)"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_(
            "Write-only. Only for tenants where an administrator issues tokens; a token "
            "cannot be renewed automatically when it expires."
        ),
    )
    clear_static_token = forms.BooleanField(label=_("Remove the stored token"), required=False)

    class Meta:
        model = AgentAccount
        fields = ["user", "tenant", "remote_user_id", "maxcontact_login", "is_active"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        instance = self.instance
        password = bool(cleaned.get("new_password")) or (
            instance.has_password and not cleaned.get("clear_password")
        )
        token = bool(cleaned.get("new_static_token")) or (
            instance.has_static_token and not cleaned.get("clear_static_token")
        )
        if password and not cleaned.get("maxcontact_login"):
            self.add_error("maxcontact_login", _("A password needs the login it belongs to."))
        if not password and not token:
            raise forms.ValidationError(
                _("Give either a MaxContact login and password, or a token.")
            )
        if password and token:
            raise forms.ValidationError(
                _(
                    "Store either a password or a token, not both: tick the box that removes "
                    "the one you no longer want."
                )
            )
        return cleaned

    def clean_new_static_token(self) -> str:
        value: str = self.cleaned_data.get("new_static_token", "")
        if value and not wire.VALID_TOKEN.fullmatch(value):
            raise forms.ValidationError(
                _("A token is printable ASCII without spaces, quotes, commas or semicolons.")
            )
        return value

    def save(self, commit: bool = True) -> AgentAccount:
        account: AgentAccount = super().save(commit=False)
        data = self.cleaned_data
        if data.get("clear_password"):
            account.set_password("")
        if data.get("new_password"):
            account.set_password(data["new_password"])
        if data.get("clear_static_token"):
            account.set_static_token("")
        if data.get("new_static_token"):
            account.set_static_token(data["new_static_token"])
        if "maxcontact_login" in self.changed_data or "tenant" in self.changed_data:
            account.forget_cached_token()
        if commit:
            account.save()
        return account


@admin.action(description=_("Test the connection to MaxContact"))
def test_connection(
    modeladmin: admin.ModelAdmin[AgentAccount], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    for account in queryset.select_related("tenant", "user"):
        started = time.monotonic()
        try:
            client = account.client()
            if client.credentials.can_log_in:
                client.login()
            calls = client.get_calls()
        except MaxContactError as error:
            modeladmin.message_user(request, f"{account}: {error.message}", level=messages.ERROR)
            continue
        except UndecryptableSecret as error:
            modeladmin.message_user(request, f"{account}: {error}", level=messages.ERROR)
            continue
        elapsed = (time.monotonic() - started) * 1000
        modeladmin.message_user(
            request,
            ngettext(
                "%(account)s: connected; %(count)d active call (%(ms)d ms).",
                "%(account)s: connected; %(count)d active calls (%(ms)d ms).",
                len(calls),
            )
            % {"account": account, "count": len(calls), "ms": elapsed},
            level=messages.SUCCESS,
        )


def secret_fields_hidden_from_error_reports(*fields: str) -> Any:
    """A change view whose posted secret fields Django's error reports never show."""

    @method_decorator(sensitive_post_parameters(*fields))
    def changeform_view(
        self: admin.ModelAdmin[Any],
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return admin.ModelAdmin.changeform_view(self, request, object_id, form_url, extra_context)

    return changeform_view


@admin.register(AgentAccount)
class AgentAccountAdmin(admin.ModelAdmin[AgentAccount]):
    form = AgentAccountForm
    changeform_view = secret_fields_hidden_from_error_reports("new_password", "new_static_token")
    list_display = [
        "user",
        "tenant",
        "remote_user_id",
        "maxcontact_login",
        "credential_kind",
        "token_cached",
        "is_active",
    ]
    list_filter = ["tenant", "is_active"]
    search_fields = [
        "user__username",
        "user__email",
        "maxcontact_login",
        "remote_user_id",
        "tenant__name",
    ]
    list_select_related = ["user", "tenant"]
    autocomplete_fields = ["user"]
    actions = [test_connection]
    readonly_fields = ["credential_kind", "token_cached", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["user", "tenant", "remote_user_id", "is_active"]}),
        (
            _("MaxContact credentials (write-only)"),
            {
                "fields": [
                    "maxcontact_login",
                    "credential_kind",
                    "new_password",
                    "clear_password",
                    "new_static_token",
                    "clear_static_token",
                    "token_cached",
                ]
            },
        ),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description=_("credentials"))
    def credential_kind(self, account: AgentAccount) -> str:
        if account.has_password:
            return str(_("login and password"))
        if account.has_static_token:
            return str(_("pasted token"))
        return str(_("none"))

    @admin.display(description=_("token cached"), boolean=True)
    def token_cached(self, account: AgentAccount) -> bool:
        return bool(account.cached_token_encrypted)


class TenantForm(forms.ModelForm):
    new_launch_secret = forms.CharField(
        label=_("Launch-link secret"),
        required=False,
        strip=True,
        min_length=32,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "Write-only. The CRM's server signs launch links with it (docs/embedding.md); "
            "at least 32 characters, e.g. from `openssl rand -hex 32`. Leave empty to keep it."
        ),
    )
    clear_launch_secret = forms.BooleanField(
        label=_("Turn launch links off (remove the secret)"), required=False
    )

    # No Meta: the admin builds the form (with its URLField overrides) on top of this one.

    def save(self, commit: bool = True) -> Tenant:
        tenant: Tenant = super().save(commit=False)
        if self.cleaned_data.get("clear_launch_secret"):
            tenant.set_launch_secret("")
        if self.cleaned_data.get("new_launch_secret"):
            tenant.set_launch_secret(self.cleaned_data["new_launch_secret"])
        if commit:
            tenant.save()
        return tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin[Tenant]):
    form = TenantForm
    changeform_view = secret_fields_hidden_from_error_reports("new_launch_secret")
    # Django 6's default already: a scheme-less URL typed here means https.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "slug", "base_url", "agent_count", "connect_timeout", "read_timeout"]
    search_fields = ["name", "base_url", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["launch_links"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "base_url"]}),
        (_("Dialling"), {"fields": ["default_region", "dial_format", "after_last_call"]}),
        (
            _("Requests"),
            {
                "fields": [
                    "connect_timeout",
                    "read_timeout",
                    "token_lifetime_seconds",
                    "ask_for_json",
                ]
            },
        ),
        (
            _("What the vendor text leaves open"),
            {
                "classes": ["collapse"],
                "fields": [
                    "auth_failure_codes",
                    "lead_phone_id_fields",
                    "token_expiry_fields",
                    "naive_time_zone",
                ],
            },
        ),
        (
            _("Labels and meanings shown to agents"),
            {
                "fields": [
                    "call_state_meanings",
                    "call_status_meanings",
                    "recording_state_meanings",
                    "call_state_labels",
                    "call_status_labels",
                    "recording_state_labels",
                    "result_code_labels",
                ]
            },
        ),
        (
            _("Embedding in a CRM"),
            {
                "fields": [
                    "allowed_origins",
                    "launch_links",
                    "new_launch_secret",
                    "clear_launch_secret",
                ]
            },
        ),
    ]

    @admin.display(description=_("launch links"))
    def launch_links(self, tenant: Tenant) -> str:
        if tenant.has_launch_secret:
            return str(_("on (a secret is stored)"))
        return str(_("off (no secret)"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).annotate(num_agents=Count("agents"))

    @admin.display(description=_("agents"), ordering="num_agents")
    def agent_count(self, tenant: Tenant) -> int:
        return getattr(tenant, "num_agents", 0)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    """The audit log: readable and filterable, never editable (not even by a superuser)."""

    list_display = [
        "created_at",
        "user",
        "remote_user_id",
        "method",
        "call_id",
        "outcome",
        "response_code",
        "short_detail",
        "latency_ms",
    ]
    list_filter = [
        "outcome",
        "method",
        "account__tenant",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = [
        "user__username",
        "=remote_user_id",
        "=call_id",
        "response_detail",
        "=request_id",
    ]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "user",
        "account",
        "remote_user_id",
        "method",
        "call_id",
        "parameters",
        "outcome",
        "response_code",
        "response_detail",
        "latency_ms",
        "request_id",
    ]
    readonly_fields = [str(name) for name in fields]

    @admin.display(description=_("detail"))
    def short_detail(self, entry: AuditEntry) -> str:
        return entry.response_detail[:80]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
