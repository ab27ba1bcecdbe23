"""System checks: a wrong encryption key stops `migrate`, `check` and the panel's start-up."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import DatabaseError


def stored_secrets_open(**kwargs: Any) -> list[checks.CheckMessage]:
    from .models import AgentAccount

    try:
        unreadable = AgentAccount.objects.with_undecryptable_secrets()
    except DatabaseError:
        return []  # no table yet (before the first migrate)
    if not unreadable:
        return []
    return [
        checks.Error(
            f"{len(unreadable)} agent account(s) hold MaxContact secrets that no key in "
            "MAXCONTACT_ENCRYPTION_KEYS opens (accounts: "
            + ", ".join(str(pk) for pk in unreadable[:20])
            + ").",
            hint="Restore the key they were encrypted with (keys are tried in order), or "
            "re-enter those credentials in the admin.",
            id="telephony.E001",
        )
    ]


def register() -> None:
    checks.register(stored_secrets_open, checks.Tags.security, deploy=False)


def refuse_to_start_with_wrong_keys() -> None:
    """Raise ImproperlyConfigured when stored secrets do not open with the configured keys."""
    from django.core.exceptions import ImproperlyConfigured

    errors = stored_secrets_open()
    if errors:
        raise ImproperlyConfigured(f"{errors[0].msg} {errors[0].hint}")
