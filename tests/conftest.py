import pytest

pytest_plugins = ["tests.simulator_control", "tests.servers"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that touches the database also runs on PostgreSQL (`make postgres-tests`)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if item.get_closest_marker("django_db") or {"db", "transactional_db"} & set(fixtures):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True)
def _pollers_forget_agents() -> None:
    """This process's poller keeps agents between polls, and the CRM state their recent
    dispositions; a test's account ids may be an earlier test's (the live stack's own worker
    reloads through the configuration epoch)."""
    from controlpanel import crm, tasks

    tasks._known.clear()
    crm._recent.clear()


# --- The cast: agents Alice and Bob at a tenant served by the simulator -----------------------


@pytest.fixture
def sim_tenant(simulator, db):
    from telephony.management.commands.demo_setup import SIMULATOR_MEANINGS
    from telephony.models import Tenant

    return Tenant.objects.create(
        name="Simulated tenant", base_url=simulator.base_url, **SIMULATOR_MEANINGS
    )


def _agent(django_user_model, tenant, username, seed):
    from telephony.models import AgentAccount

    first, last = seed.full_name.split(" ", 1)
    user = django_user_model.objects.create_user(
        username, password="panel-pw-123", first_name=first, last_name=last
    )
    account = AgentAccount(
        user=user, tenant=tenant, remote_user_id=seed.user_id, maxcontact_login=seed.login
    )
    account.set_password(seed.password)
    account.save()
    return account


@pytest.fixture
def alice(django_user_model, sim_tenant):
    from telephony.simulator.world import SEED_AGENTS

    return _agent(django_user_model, sim_tenant, "alice", SEED_AGENTS[0])


@pytest.fixture
def bob(django_user_model, sim_tenant):
    from telephony.simulator.world import SEED_AGENTS

    return _agent(django_user_model, sim_tenant, "bob", SEED_AGENTS[1])


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice.user)
    return client
