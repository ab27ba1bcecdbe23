"""Who gets in: login throttling, session lifetime, disabled agents, and CSRF on the cookie path."""

from __future__ import annotations

import json
import re
import time
import uuid
from html import unescape

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


def test_the_deploy_checks_pass_with_production_settings(tmp_path):
    """`manage.py check --deploy` as production runs it: HTTPS, keys from the environment."""
    import os
    import subprocess
    import sys

    from cryptography.fernet import Fernet

    from tests.servers import ROOT

    # Not the test run's own environment: it allows async-unsafe calls for the browser tests,
    # which the deploy checks rightly refuse.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "ENV_FILE": "/dev/null",
        "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
        "DEBUG": "false",
        "SECURE_COOKIES": "true",
        "SECRET_KEY": "p" * 20 + uuid.uuid4().hex + "Q" * 20,
        "MAXCONTACT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "panel.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_security_headers_on_every_page(client, alice):
    for url in (reverse("login"), reverse("healthz")):
        response = client.get(url)
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
    policy = client.get(reverse("login"))["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_hostile_names_from_maxcontact_are_shown_as_text(alice_client, alice, simulator):
    from controlpanel import workspace
    from telephony.desk import read_desk

    lead = simulator.add_lead(HOSTILE, "07700900999", name2='"><b onmouseover=alert(2)>')
    simulator.set_agent_state(101, "ready")
    simulator.offer(101, lead_id=lead)
    pages = {
        "page": alice_client.get(reverse("panel")).content.decode(),
        "pushed fragment": workspace.render(alice, read_desk(alice), version=1),
        "lead panel": alice_client.get(
            reverse("lead-panel", args=[1000]), headers={"HX-Request": "true"}
        ).content.decode(),
    }
    for where, html in pages.items():
        assert "<script>alert" not in html, where
        assert "<img src=x" not in html, where
        assert "<b onmouseover" not in html, where
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in pages["page"]  # shown, as text
    # The CRM's events carry the data as JSON inside an escaped attribute: text again.
    state = re.search(r'data-crm-state="([^"]*)"', pages["page"])
    assert state is not None and "<" not in state.group(1)
    assert json.loads(unescape(state.group(1)))["calls"][0]["phone"] == "07700900999"


def test_no_secret_appears_anywhere_in_a_full_run(
    alice, simulator, admin_client, caplog, settings, sim_tenant
):
    """A day in miniature, failures included; then every page, header, log line and audit
    entry is searched for every secret involved."""
    import logging

    from controlpanel import embed
    from telephony import encryption
    from telephony.simulator.world import SEED_AGENTS

    caplog.set_level(logging.DEBUG)
    launch_secret = "L" * 8 + uuid.uuid4().hex + "l" * 8
    sim_tenant.set_launch_secret(launch_secret)
    sim_tenant.save()
    seen: list[str] = []

    def keep(response):
        seen.append(str(response.status_code) + repr(dict(response.headers)))
        if not getattr(response, "streaming", False):
            seen.append(response.content.decode(errors="replace"))
        return response

    agent = Client()
    keep(agent.get(reverse("login")))
    keep(log_in(agent, "alice"))
    keep(agent.get(reverse("panel")))

    def act(name, *args, **data):
        return keep(
            agent.post(
                reverse(name, args=args), {"key": uuid.uuid4().hex, **data}, HTTP_HX_REQUEST="true"
            )
        )

    act("go-ready")
    act("dial", phone="07700900123")
    act("call-action", 1000, "hold")
    act("call-action", 1000, "stoprecord")
    simulator.fault("status", status=500, path_contains="startrecord")
    act("call-action", 1000, "startrecord")  # MaxContact fails: an error message is shown
    simulator.fault("reject", path_contains="retrieve", detail="nope")
    act("call-action", 1000, "retrieve")
    simulator.clear_faults()
    simulator.expire_tokens()  # the token expires mid-shift: the client logs in again
    act("call-action", 1000, "retrieve")
    act("call-action", 1000, "hangup")
    act("dispose", 1000, **{"c1000-key": uuid.uuid4().hex, "c1000-result_code": "SALE"})
    keep(agent.get(reverse("directory", args=["users"]), HTTP_HX_REQUEST="true"))
    params = {
        "agent": "alice",
        "expires": str(int(__import__("time").time()) + 60),
        "nonce": uuid.uuid4().hex,
    }
    params["signature"] = embed.launch_signature(
        launch_secret, sim_tenant.slug, "alice", int(params["expires"]), params["nonce"]
    )
    keep(Client().get(reverse("embed-launch", args=[sim_tenant.slug]), params))
    for url in (
        "/admin/telephony/agentaccount/",
        f"/admin/telephony/agentaccount/{alice.pk}/change/",
        f"/admin/telephony/tenant/{sim_tenant.pk}/change/",
        "/admin/telephony/auditentry/",
    ):
        keep(admin_client.get(url))
    keep(
        admin_client.post(
            "/admin/telephony/agentaccount/",
            {"action": "test_connection", "_selected_action": [alice.pk]},
            follow=True,
        )
    )

    alice.refresh_from_db()
    secrets = {
        "MaxContact password": SEED_AGENTS[0].password,
        "MaxContact token": encryption.decrypt(alice.cached_token_encrypted),
        "panel password": "panel-pw-123",
        "launch secret": launch_secret,
        "encryption key": settings.MAXCONTACT_ENCRYPTION_KEYS.split(",")[0],
        "SECRET_KEY": settings.SECRET_KEY,
    }
    from telephony.models import AuditEntry

    audit = [repr((e.parameters, e.response_detail, e.method)) for e in AuditEntry.objects.all()]
    assert len(audit) >= 9
    corpus = {"pages": "\n".join(seen), "logs": caplog.text, "audit": "\n".join(audit)}
    for where, text in corpus.items():
        for name, secret in secrets.items():
            assert secret and secret not in text, f"{name} found in {where}"


def test_one_request_id_ties_the_click_its_vendor_call_and_its_audit_entry(
    alice_client, simulator, caplog
):
    import logging

    from telephony.models import AuditEntry

    caplog.set_level(logging.INFO)
    response = alice_client.post(
        reverse("go-ready"),
        {"key": uuid.uuid4().hex},
        headers={"HX-Request": "true", "X-Request-ID": "click-0123456789"},
    )
    assert response["X-Request-ID"] == "click-0123456789"
    entry = AuditEntry.objects.get(method="goready")
    assert entry.request_id == "click-0123456789"
    lines = [r for r in caplog.records if getattr(r, "request_id", "") == "click-0123456789"]
    messages = [r.getMessage() for r in lines]
    assert any(m.startswith("maxcontact goready user=101 status=200") for m in messages)
    assert any(m.startswith("POST /panel/ready 200") for m in messages)
    # A made-up id that could forge a log line is replaced by one of ours.
    forged = alice_client.get(reverse("healthz"), headers={"X-Request-ID": "x\ny"})
    assert forged["X-Request-ID"] != "x\ny"


@pytest.mark.django_db(transaction=True)
def test_a_disabled_agents_open_stream_ends(panel_server, alice, simulator):
    from tests.sse import SSEClient

    client = Client()
    client.force_login(alice.user)
    stream = SSEClient(
        f"{panel_server.url}/panel/stream", {"sessionid": client.cookies["sessionid"].value}
    )
    try:
        stream.next()
        alice.user.is_active = False
        alice.user.save()
        stream.thread.join(timeout=40)  # checked with the presence refresh, within a heartbeat
        assert not stream.thread.is_alive(), "the stream is still open"
    finally:
        stream.close()


@pytest.mark.django_db(transaction=True)
def test_a_stream_carries_only_its_own_agents_calls(live_stack, alice, bob, simulator):
    from tests.sse import SSEClient

    def open_for(account):
        client = Client()
        client.force_login(account.user)
        client.post(reverse("go-ready"), {"key": uuid.uuid4().hex}, HTTP_HX_REQUEST="true")
        return SSEClient(
            f"{live_stack.url}/panel/stream", {"sessionid": client.cookies["sessionid"].value}
        )

    alices, bobs = open_for(alice), open_for(bob)
    try:
        simulator.offer(102, phone="07700900789")  # Bob's customer
        assert "07700 900789" in bobs.wait_for("07700 900789", timeout=15).text
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # nothing Alice receives mentions Bob's call
            try:
                assert "07700 900789" not in alices.next(0.2).text
            except TimeoutError:
                continue
    finally:
        alices.close()
        bobs.close()
