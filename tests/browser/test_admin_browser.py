"""An admin, in a real browser, sets up an agent and tests her MaxContact connection."""

import pytest

from telephony.models import AgentAccount, Tenant
from telephony.simulator.world import SEED_AGENTS

pytestmark = pytest.mark.django_db(transaction=True)
ALICE = SEED_AGENTS[0]


def test_admin_adds_an_agent_and_tests_her_connection(
    panel_server, simulator, django_user_model, page
):
    django_user_model.objects.create_superuser("root", "root@example.com", "admin-pw-123")
    django_user_model.objects.create_user("alice")
    Tenant.objects.create(name="Simulated tenant", base_url=simulator.base_url)

    page.goto(f"{panel_server.url}/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "admin-pw-123")
    page.click("input[type=submit]")
    page.get_by_role("link", name="Agent accounts").click()
    page.get_by_role("link", name="Add agent account").click()

    page.select_option("#id_tenant", label="Simulated tenant")
    alice_id = str(django_user_model.objects.get(username="alice").pk)
    page.evaluate(  # the user field is an autocomplete widget; set its underlying select
        """(id) => { const s = document.querySelector('#id_user');
                     s.add(new Option('alice', id, true, true)); }""",
        alice_id,
    )
    page.fill("#id_remote_user_id", str(ALICE.user_id))
    page.fill("#id_maxcontact_login", ALICE.login)
    page.fill("#id_new_password", ALICE.password)
    page.click("input[name=_continue]")

    # Back on the change form: the password field is empty and the page holds no secret.
    assert page.input_value("#id_new_password") == ""
    assert ALICE.password not in page.content()
    assert page.get_by_text("login and password").is_visible()

    page.get_by_role("link", name="Agent accounts").first.click()
    page.check("input[name=_selected_action]")
    page.select_option("select[name=action]", "test_connection")
    page.click("button[name=index]")
    success = page.locator(".messagelist .success")
    success.wait_for()
    assert "connected; 0 active calls" in success.inner_text()
    assert ALICE.password not in page.content()

    account = AgentAccount.objects.get(user__username="alice")
    assert account.credentials().password == ALICE.password
    assert account.cached_token_encrypted  # the token was cached, encrypted
