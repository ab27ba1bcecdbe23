"""Re-encrypt every stored secret under the newest key: MaxContact credentials and tokens,
and the tenants' launch-link secrets.

Procedure: put a new key in front of MAXCONTACT_ENCRYPTION_KEYS, restart, run this command,
then remove the old key. Secrets no key opens are reported and left as they are.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from telephony import encryption
from telephony.models import AgentAccount, Tenant


class Command(BaseCommand):
    help = "Re-encrypt all stored MaxContact secrets under the first (newest) key."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = 0
        failed: list[int] = []
        failed_tenants: list[str] = []
        with transaction.atomic():
            for account in AgentAccount.objects.select_for_update().order_by("pk"):
                changes: dict[str, object] = {}
                try:
                    for name in AgentAccount.CREDENTIAL_FIELDS:
                        if getattr(account, name):
                            changes[name] = encryption.rotate(getattr(account, name))
                except encryption.UndecryptableSecret:
                    failed.append(account.pk)
                    continue
                if account.cached_token_encrypted:
                    try:
                        changes["cached_token_encrypted"] = encryption.rotate(
                            account.cached_token_encrypted
                        )
                    except encryption.UndecryptableSecret:
                        # A cached token is disposable: drop it, the next request logs in.
                        changes.update(
                            cached_token_encrypted="",
                            cached_token_obtained_at=None,
                            cached_token_expires_at=None,
                        )
                if changes:
                    AgentAccount.objects.filter(pk=account.pk).update(**changes)
                    rotated += len(changes)
            for tenant in Tenant.objects.select_for_update().exclude(launch_secret_encrypted=""):
                try:
                    secret = encryption.rotate(tenant.launch_secret_encrypted)
                except encryption.UndecryptableSecret:
                    failed_tenants.append(tenant.slug)
                    continue
                Tenant.objects.filter(pk=tenant.pk).update(launch_secret_encrypted=secret)
                rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} secret(s) under the newest key.")
        if failed_tenants:
            self.stderr.write(
                "Launch-link secrets no configured key opens (tenants: "
                + ", ".join(failed_tenants)
                + "): enter them again in the admin."
            )
        if failed:
            raise CommandError(
                f"{len(failed)} account(s) hold secrets no configured key opens: "
                + ", ".join(map(str, failed))
            )
