"""Create (or refresh) the demo admin, the demo agent and a tenant pointing at the simulator.

Used by `make run`. Logins are printed; the password is DEMO_PASSWORD when set, otherwise a new
random one (printed once). The demo agent's MaxContact credentials are the simulator's first
seeded agent, stored encrypted like any other.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from telephony.models import AgentAccount, Tenant, normalise_origin
from telephony.simulator.world import SEED_AGENTS

DEMO_TENANT = "Demo (simulator)"

#: What the simulator's enumeration values mean (docs/simulator.md). A real tenant's admin
#: fills these in once the vendor's values are known; until then raw numbers are shown.
SIMULATOR_MEANINGS = {
    "call_state_meanings": {"1": "ringing", "2": "talking", "3": "held", "4": "ended"},
    "call_state_labels": {"1": "Ringing", "2": "Connected", "3": "On hold", "4": "Ended"},
    "call_status_meanings": {"1": "inbound", "2": "outbound"},
    "call_status_labels": {"1": "Inbound", "2": "Outbound (manual)"},
    "recording_state_meanings": {"0": "off", "1": "recording", "2": "stopped"},
    "recording_state_labels": {"0": "Not recorded", "1": "Recording", "2": "Stopped"},
    "after_last_call": "ready",
}


class Command(BaseCommand):
    help = "Create the demo admin and agent against the MaxContact simulator."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--simulator-url",
            default=os.environ.get("SIMULATOR_URL", "http://127.0.0.1:8081/webservices"),
            help="the simulator's base URL (default: SIMULATOR_URL or %(default)s)",
        )
        parser.add_argument(
            "--crm-origin",
            default=os.environ.get("DEMO_CRM_ORIGIN", ""),
            help="the example CRM's origin, allowed to frame the panel (default: DEMO_CRM_ORIGIN)",
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(12)
        users = get_user_model()
        admin_user, _ = users.objects.update_or_create(
            username="admin",
            defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"},
        )
        admin_user.set_password(password)
        admin_user.save()
        agent_user, _ = users.objects.update_or_create(
            username="agent",
            defaults={"first_name": "Alice", "last_name": "Archer", "email": "agent@example.com"},
        )
        agent_user.set_password(password)
        agent_user.save()

        tenant, _ = Tenant.objects.update_or_create(
            name=DEMO_TENANT,
            defaults={"base_url": options["simulator_url"].rstrip("/"), **SIMULATOR_MEANINGS},
        )
        if options["crm_origin"]:
            tenant.allowed_origins = [normalise_origin(options["crm_origin"])]
        # The example CRM signs launch links with this (docs/embedding.md); never printed.
        tenant.set_launch_secret(os.environ.get("DEMO_LAUNCH_SECRET", ""))
        tenant.save()
        seed = SEED_AGENTS[0]
        account = AgentAccount.objects.filter(user=agent_user).first() or AgentAccount(
            user=agent_user
        )
        account.tenant = tenant
        account.remote_user_id = seed.user_id
        account.maxcontact_login = seed.login
        account.set_password(seed.password)
        account.save()

        self.stdout.write(
            f"Demo logins (password: {password}):\n"
            f"  admin  -> /admin/  (superuser)\n"
            f"  agent  -> MaxContact user {seed.user_id} ({seed.login}) at {tenant.base_url}"
        )
