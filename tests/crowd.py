"""The simulator's crowd (`--crowd N`) as panel agents, for the soak and the benchmarks."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client

from telephony.management.commands.demo_setup import SIMULATOR_MEANINGS
from telephony.models import AgentAccount, Tenant
from telephony.simulator.world import crowd_agents


def make_agents(sim: Any, count: int) -> list[tuple[AgentAccount, Client, str]]:
    """(account, logged-in test client, session id) for each of the first `count` agents."""
    tenant = Tenant.objects.create(name="Crowd", base_url=sim.base_url, **SIMULATOR_MEANINGS)
    users = get_user_model()
    agents = []
    for seed in crowd_agents(count):
        user = users.objects.create_user(seed.login, password="x-" + seed.password)
        account = AgentAccount(
            user=user, tenant=tenant, remote_user_id=seed.user_id, maxcontact_login=seed.login
        )
        account.set_password(seed.password)
        account.save()
        client = Client()
        client.force_login(user)
        agents.append((account, client, client.cookies["sessionid"].value))
    return agents
