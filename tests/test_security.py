"""Who gets in: login throttling, session lifetime, disabled agents, and CSRF on the cookie path."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def log_in(client, username, password="panel-pw-123", url=None, address="10.0.0.1"):
    return client.post(
        url or reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def test_a_username_is_locked_after_repeated_failures_even_from_another_address(alice):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "alice", "wrong", address=f"10.0.0.{n + 1}").status_code == 200
    assert log_in(client, "alice", "wrong", address="10.0.0.99").status_code == 429  # the last
    refused = log_in(Client(), "alice", address="10.9.9.9")  # the right password, elsewhere
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.content.decode()
    assert "_auth_user_id" not in Client().session  # nobody was logged in


def test_an_address_is_locked_after_failures_for_many_usernames(alice):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, f"guess{n}", "wrong", address="10.6.6.6")
    assert log_in(Client(), "alice", address="10.6.6.6").status_code == 429
    assert log_in(Client(), "alice", address="10.7.7.7").status_code == 302  # others may


def test_a_success_resets_the_count(alice):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "alice", "wrong")
    assert log_in(Client(), "alice").status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "alice", "wrong")
    assert log_in(Client(), "alice").status_code == 302


def test_a_lockout_inside_a_crm_frame_is_a_framable_page(alice, sim_tenant):
    sim_tenant.allowed_origins = ["https://crm.example.com"]
    sim_tenant.save()
    url = reverse("embed", args=[sim_tenant.slug])
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(Client(), "alice", "wrong", url=url)
    refused = log_in(Client(), "alice", url=url)
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.content.decode()
    assert "X-Frame-Options" not in refused
    assert "https://crm.example.com" in refused["Content-Security-Policy"]


def test_sessions_expire():
    assert 0 < settings.SESSION_COOKIE_AGE <= 24 * 3600


def test_an_agent_disabled_by_an_admin_is_out_at_once(alice_client, alice):
    assert alice_client.get(reverse("panel")).status_code == 200
    alice.user.is_active = False
    alice.user.save()
    assert alice_client.get(reverse("panel")).status_code == 302  # to the login page
    response = alice_client.post(
        reverse("go-ready"), {"key": uuid.uuid4().hex}, headers={"HX-Request": "true"}
    )
    assert response["HX-Redirect"].startswith(reverse("login"))


def test_a_disabled_agent_account_stops_every_action(alice_client, alice, simulator):
    alice.is_active = False
    alice.save()
    response = alice_client.post(reverse("go-ready"), {"key": uuid.uuid4().hex})
    assert response.status_code == 403
    assert not [r for r in simulator.requests() if "/goready/" in r["path"].lower()]


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("go-ready", []),
        ("dial", []),
        ("call-action", [1000, "hangup"]),
        ("dispose", [1000]),
        ("change-lead", [1000]),
        ("new-lead", [1000]),
        ("transfer-start", [1000]),
        ("transfer-complete", []),
        ("logout", []),
    ],
)
def test_every_state_changing_view_refuses_a_post_without_its_csrf_token(
    alice, simulator, name, args
):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice.user)
    response = client.post(
        reverse(name, args=args), {"key": uuid.uuid4().hex, "phone": "07700900123"}
    )
    assert response.status_code == 403
    assert len(simulator.requests()) == 0  # nothing reached MaxContact
