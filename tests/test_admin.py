"""The admin: secrets are write-only, lists are useful, 'test connection' tells the truth."""

import logging

import pytest
from django.urls import reverse

from telephony.models import AgentAccount, Tenant
from telephony.simulator.world import SEED_AGENTS

pytestmark = pytest.mark.django_db
ALICE = SEED_AGENTS[0]
PASSWORD_FIELD = 'name="new_password"'


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    return client


@pytest.fixture
def tenant(simulator):
    return Tenant.objects.create(name="Sim", base_url=simulator.base_url)


@pytest.fixture
def alice(django_user_model, tenant):
    user = django_user_model.objects.create_user("alice")
    account = AgentAccount(
        user=user, tenant=tenant, remote_user_id=ALICE.user_id, maxcontact_login=ALICE.login
    )
    account.set_password(ALICE.password)
    account.save()
    return account


def change_url(account):
    return reverse("admin:telephony_agentaccount_change", args=[account.pk])


def form_data(account, **overrides):
    data = {
        "user": account.user_id,
        "tenant": account.tenant_id,
        "remote_user_id": account.remote_user_id,
        "maxcontact_login": account.maxcontact_login,
        "is_active": "on",
        "new_password": "",
        "new_static_token": "",
    }
    data.update(overrides)
    return data


def test_the_change_form_never_shows_a_secret(admin_client, alice):
    alice.set_static_token("pasted-token-xyz")
    alice.save()
    alice.client().login()  # a cached token exists too
    alice.refresh_from_db()
    html = admin_client.get(change_url(alice)).content.decode()
    assert PASSWORD_FIELD in html
    assert ALICE.password not in html
    assert "pasted-token-xyz" not in html
    assert alice.password_encrypted not in html
    assert alice.cached_token_encrypted not in html
    assert alice.credentials().password[:3] + "*" not in html  # no masked prefix either
    assert "login and password" in html


def test_an_empty_password_field_keeps_the_stored_password(admin_client, alice):
    response = admin_client.post(change_url(alice), form_data(alice, remote_user_id=101))
    assert response.status_code == 302
    assert AgentAccount.objects.get(pk=alice.pk).credentials().password == ALICE.password


def test_typing_a_password_replaces_it_and_forgets_the_token(admin_client, alice):
    alice.client().login()
    admin_client.post(change_url(alice), form_data(alice, new_password="brand-new"))
    fresh = AgentAccount.objects.get(pk=alice.pk)
    assert fresh.credentials().password == "brand-new"
    assert fresh.cached_token_encrypted == ""


def test_clearing_the_only_credential_is_refused(admin_client, alice):
    response = admin_client.post(change_url(alice), form_data(alice, clear_password="on"))
    assert response.status_code == 200
    assert "Give either a MaxContact login and password, or a token." in response.content.decode()
    assert AgentAccount.objects.get(pk=alice.pk).has_password


def test_an_account_can_be_created_with_a_token_alone(admin_client, tenant, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    response = admin_client.post(
        reverse("admin:telephony_agentaccount_add"),
        {
            "user": bob.pk,
            "tenant": tenant.pk,
            "remote_user_id": 102,
            "maxcontact_login": "",
            "is_active": "on",
            "new_password": "",
            "new_static_token": "tok-from-admin",
        },
    )
    assert response.status_code == 302
    account = AgentAccount.objects.get(user=bob)
    assert account.credentials().static_token == "tok-from-admin"
    assert "tok-from-admin" not in account.static_token_encrypted


def test_lists_and_search(admin_client, alice, tenant):
    changelist = reverse("admin:telephony_agentaccount_changelist")
    html = admin_client.get(changelist, {"q": "alice.agent"}).content.decode()
    assert "alice" in html
    assert "login and password" in html
    assert (
        admin_client.get(changelist, {"q": "nobody"}).content.decode().count("field-remote_user_id")
        == 0
    )
    tenants = admin_client.get(reverse("admin:telephony_tenant_changelist")).content.decode()
    assert "Sim" in tenants
    assert tenant.base_url in tenants
    assert (
        admin_client.get(reverse("admin:telephony_tenant_change", args=[tenant.pk])).status_code
        == 200
    )


def run_test_connection(admin_client, *accounts):
    return admin_client.post(
        reverse("admin:telephony_agentaccount_changelist"),
        {"action": "test_connection", "_selected_action": [a.pk for a in accounts]},
        follow=True,
    ).content.decode()


def test_test_connection_logs_in_and_reads_calls(admin_client, alice, simulator, caplog):
    caplog.set_level(logging.DEBUG)
    html = run_test_connection(admin_client, alice)
    assert "connected; 0 active calls" in html
    paths = [r["path"].lower() for r in simulator.requests()]
    assert any("apitoken/login" in p for p in paths)
    assert any("getcalls/user/101" in p for p in paths)
    token = AgentAccount.objects.get(pk=alice.pk)
    secret_values = [ALICE.password, token.client().token_store.load().key]
    for secret in secret_values:
        assert secret not in html
        assert secret not in caplog.text


def test_test_connection_reports_the_vendors_own_error(admin_client, alice):
    alice.set_password("wrong-password")
    alice.save()
    html = run_test_connection(admin_client, alice)
    assert "Invalid username or password" in html
    assert "wrong-password" not in html


def test_test_connection_reports_an_unreachable_tenant(admin_client, alice, tenant):
    tenant.base_url = "http://127.0.0.1:9/webservices"
    tenant.connect_timeout = 0.5
    tenant.save()
    html = run_test_connection(admin_client, alice)
    assert "Could not connect to MaxContact" in html


def test_a_password_and_a_token_together_are_refused(admin_client, alice):
    response = admin_client.post(change_url(alice), form_data(alice, new_static_token="tok"))
    assert "not both" in response.content.decode()
    assert not AgentAccount.objects.get(pk=alice.pk).has_static_token


def test_replacing_the_password_by_a_token_works_in_one_save(admin_client, alice):
    response = admin_client.post(
        change_url(alice), form_data(alice, new_static_token="tok-1", clear_password="on")
    )
    assert response.status_code == 302
    fresh = AgentAccount.objects.get(pk=alice.pk)
    assert (fresh.has_password, fresh.credentials().static_token) == (False, "tok-1")


def test_a_token_a_cookie_cannot_carry_is_refused_and_not_echoed(admin_client, alice):
    response = admin_client.post(
        change_url(alice), form_data(alice, new_static_token="bad; token", clear_password="on")
    )
    html = response.content.decode()
    assert "printable ASCII" in html
    assert "bad; token" not in html


def test_test_connection_reports_undecryptable_credentials(admin_client, alice, settings):
    from cryptography.fernet import Fernet

    settings.MAXCONTACT_ENCRYPTION_KEYS = Fernet.generate_key().decode()
    html = run_test_connection(admin_client, alice)
    assert "cannot be decrypted" in html


def test_the_audit_log_is_readable_filterable_and_never_editable(admin_client, alice):
    from telephony.models import AuditEntry

    entry = AuditEntry.objects.create(
        user=alice.user,
        account=alice,
        remote_user_id=101,
        method="dial",
        parameters={"phone": "07700900123"},
        outcome="ok",
        response_code=0,
        latency_ms=12,
    )
    changelist = reverse("admin:telephony_auditentry_changelist")
    html = admin_client.get(changelist, {"outcome__exact": "ok", "method": "dial"}).content.decode()
    assert "dial" in html
    page = admin_client.get(reverse("admin:telephony_auditentry_change", args=[entry.pk]))
    assert page.status_code == 200
    assert "07700900123" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.get(reverse("admin:telephony_auditentry_add")).status_code == 403
    response = admin_client.post(
        reverse("admin:telephony_auditentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_secret_fields_are_hidden_from_djangos_error_reports(admin_client, simulator):
    from telephony.models import Tenant

    tenant = Tenant.objects.create(name="Reports", base_url=simulator.base_url)
    response = admin_client.post(
        f"/admin/telephony/tenant/{tenant.pk}/change/", {"new_launch_secret": "s" * 40}
    )
    assert list(response.wsgi_request.sensitive_post_parameters) == ["new_launch_secret"]
    response = admin_client.post("/admin/telephony/agentaccount/add/", {"new_password": "pw"})
    assert list(response.wsgi_request.sensitive_post_parameters) == [
        "new_password",
        "new_static_token",
    ]
