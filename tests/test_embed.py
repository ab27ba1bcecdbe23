"""Embedding in a CRM, below the browser: framing headers, the Partitioned cookie attribute,
launch links (signature, single use, expiry), the panel token in a header (actions and the
SSE stream), and the call state the CRM's events come from."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from http.cookies import SimpleCookie

import pytest
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from controlpanel import crm, embed
from controlpanel.models import UsedLaunchLink
from examples.crm.server import sign_launch_link
from telephony.models import Tenant, normalise_origin

pytestmark = pytest.mark.django_db

CRM = "https://crm.example.com"
SECRET = "s" * 40


@pytest.fixture
def tenant(sim_tenant):
    sim_tenant.allowed_origins = [CRM]
    sim_tenant.set_launch_secret(SECRET)
    sim_tenant.save()
    return sim_tenant


def link_params(tenant, agent="alice", *, expires_in=60, nonce=None, secret=SECRET):
    expires = int(time.time()) + expires_in
    nonce = nonce or secrets.token_urlsafe(18)
    signature = embed.launch_signature(secret, tenant.slug, agent, expires, nonce)
    return {"agent": agent, "expires": str(expires), "nonce": nonce, "signature": signature}


def launch(client, tenant, **kwargs):
    return client.get(reverse("embed-launch", args=[tenant.slug]), link_params(tenant, **kwargs))


def token_of(response) -> str:
    match = re.search(
        r'"X-Panel-Token": "([^"]+)"', response.content.decode().replace("&quot;", '"')
    )
    assert match, "the page carries no panel token"
    return match.group(1)


# --- Origins ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("https://CRM.example.com/", "https://crm.example.com"),
        ("https://crm.example.com:443", "https://crm.example.com"),
        ("https://crm.example.com:8443", "https://crm.example.com:8443"),
        ("http://localhost:8099", "http://localhost:8099"),
    ],
)
def test_an_origin_is_stored_the_way_browsers_write_it(typed, stored):
    assert normalise_origin(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "http://crm.example.com",  # plain http off this machine
        "https://*.example.com",
        "https://crm.example.com/path",
        "https://crm.example.com; script-src *",
        "crm.example.com",
        "https://crm.example.com:99999",
        "*",
    ],
)
def test_anything_but_an_exact_origin_is_refused(typed):
    with pytest.raises(ValidationError):
        normalise_origin(typed)


def test_the_tenant_form_normalises_and_deduplicates_origins(sim_tenant):
    sim_tenant.allowed_origins = ["https://A.example.com/", "https://a.example.com"]
    sim_tenant.full_clean()
    assert sim_tenant.allowed_origins == ["https://a.example.com"]


def test_a_tenant_gets_a_unique_slug_from_its_name(simulator):
    first = Tenant.objects.create(name="Acme Ltd", base_url=simulator.base_url)
    second = Tenant.objects.create(name="Acme, Ltd", base_url=simulator.base_url)
    assert first.slug == "acme-ltd"
    assert second.slug == "acme-ltd-2"


# --- Framing ----------------------------------------------------------------------------------


def frame_ancestors(response) -> str:
    policy = response["Content-Security-Policy"]
    return next(p.strip() for p in policy.split(";") if p.strip().startswith("frame-ancestors"))


def test_the_embed_page_may_be_framed_by_the_tenants_origins_only(client, tenant):
    response = client.get(reverse("embed", args=[tenant.slug]))
    assert response.status_code == 200
    assert frame_ancestors(response) == f"frame-ancestors 'self' {CRM}"
    assert "X-Frame-Options" not in response


def test_every_other_page_refuses_to_be_framed(alice_client, tenant):
    for url in (reverse("panel"), reverse("login"), "/admin/login/"):
        response = Client().get(url) if url != reverse("panel") else alice_client.get(url)
        assert response["X-Frame-Options"] == "DENY", url
    assert "frame-ancestors 'none'" in alice_client.get(reverse("panel"))["Content-Security-Policy"]


def test_an_unknown_tenant_is_not_found(client, tenant):
    assert client.get(reverse("embed", args=["no-such-tenant"])).status_code == 404


def test_a_tenant_without_origins_is_framed_by_the_panel_itself_only(client, sim_tenant):
    response = client.get(reverse("embed", args=[sim_tenant.slug]))
    assert frame_ancestors(response) == "frame-ancestors 'self'"


def test_logging_in_inside_the_frame_shows_the_compact_panel(client, tenant, alice):
    url = reverse("embed", args=[tenant.slug])
    response = client.post(url, {"username": "alice", "password": "panel-pw-123"})
    assert response.status_code == 303
    assert response["Location"] == f"{url}?signed_in=1"
    page = client.get(response["Location"])
    html = page.content.decode()
    assert 'class="embedded compact"' in html
    assert "embed.js" in html
    assert frame_ancestors(page) == f"frame-ancestors 'self' {CRM}"


def test_arriving_logged_out_right_after_logging_in_means_the_cookie_was_refused(client, tenant):
    response = client.get(reverse("embed", args=[tenant.slug]) + "?signed_in=1")
    html = response.content.decode()
    assert "blocks the panel" in html
    assert "Open the panel in its own window" in html
    assert 'name="password"' not in html  # no form to loop on
    assert frame_ancestors(response) == f"frame-ancestors 'self' {CRM}"


def test_a_login_post_without_its_csrf_cookie_explains_instead_of_looping(tenant):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("embed", args=[tenant.slug]), {"username": "alice", "password": "x"}
    )
    assert response.status_code == 403
    assert "blocks the panel" in response.content.decode()
    assert frame_ancestors(response) == f"frame-ancestors 'self' {CRM}"


def test_an_agent_of_another_tenant_is_told_so(client, tenant, django_user_model, simulator):
    from telephony.models import AgentAccount

    other = Tenant.objects.create(name="Other", base_url=simulator.base_url)
    user = django_user_model.objects.create_user("olga", password="pw-12345678")
    AgentAccount.objects.create(user=user, tenant=other, remote_user_id=103, maxcontact_login="c")
    client.force_login(user)
    response = client.get(reverse("embed", args=[tenant.slug]))
    assert "another MaxContact tenant" in response.content.decode()


# --- The Partitioned cookie attribute ---------------------------------------------------------


def _through_middleware(**cookie):
    def view(request):
        response = HttpResponse("ok")
        response.set_cookie("c", "v", **cookie)
        return response

    return embed.PartitionedCookieMiddleware(view)(RequestFactory().get("/"))


@override_settings(EMBEDDING=True)
def test_cross_site_cookies_are_marked_partitioned():
    header = _through_middleware(secure=True, samesite="None").cookies.output()
    assert "Partitioned" in header
    assert "SameSite=None" in header
    assert "Secure" in header


@override_settings(EMBEDDING=True)
def test_other_cookies_are_left_alone():
    assert "Partitioned" not in _through_middleware(samesite="Lax").cookies.output()
    assert "Partitioned" not in _through_middleware(secure=True, samesite="Lax").cookies.output()


@override_settings(EMBEDDING=False)
def test_nothing_is_partitioned_when_embedding_is_off():
    assert "Partitioned" not in _through_middleware(secure=True, samesite="None").cookies.output()


def test_the_real_session_and_csrf_cookies_come_partitioned(client, tenant, alice):
    page = client.get(reverse("embed", args=[tenant.slug]))
    assert "Partitioned" in page.cookies["csrftoken"].output()
    login = client.post(
        reverse("embed", args=[tenant.slug]), {"username": "alice", "password": "panel-pw-123"}
    )
    header = login.cookies["sessionid"].output()
    assert "Partitioned" in header and "SameSite=None" in header and "Secure" in header
    parsed = SimpleCookie()
    parsed.load(header.removeprefix("Set-Cookie: "))
    assert parsed["sessionid"].value  # still a cookie Python itself can read back


# --- Launch links -----------------------------------------------------------------------------


def test_a_launch_link_opens_the_panel_with_a_token(client, tenant, alice):
    response = launch(client, tenant)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert frame_ancestors(response) == f"frame-ancestors 'self' {CRM}"
    assert token_of(response)
    assert "sessionid" not in response.cookies  # the token stands in for a cookie


def test_the_documented_recipe_signs_what_the_panel_checks(client, tenant, alice):
    url = sign_launch_link("http://testserver", tenant.slug, "alice", SECRET)
    assert client.get(url.removeprefix("http://testserver")).status_code == 200
    # ... and it is plain HMAC-SHA256, as docs/embedding.md says
    params = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
    message = f"v1\n{tenant.slug}\nalice\n{params['expires']}\n{params['nonce']}".encode()
    assert params["signature"] == hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()


def test_a_launch_link_opens_the_panel_once(client, tenant, alice):
    params = link_params(tenant)
    url = reverse("embed-launch", args=[tenant.slug])
    assert client.get(url, params).status_code == 200
    again = Client().get(url, params)
    assert again.status_code == 403
    assert "expired or was already used" in again.content.decode()
    assert "X-Panel-Token" not in again.content.decode()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"expires_in": -1}, "expired or was already used"),
        ({"expires_in": 3600}, "not valid"),  # longer than a launch link may live
        ({"secret": "t" * 40}, "not valid"),
        ({"agent": "mallory"}, "not valid"),
    ],
)
def test_a_bad_launch_link_is_refused_with_words(client, tenant, alice, change, words):
    response = launch(client, tenant, **change)
    assert response.status_code == 403
    assert words in response.content.decode()
    assert "X-Panel-Token" not in response.content.decode()


def test_a_launch_link_cannot_open_another_tenants_agent(client, tenant, simulator, bob):
    other = Tenant.objects.create(name="Other", base_url=simulator.base_url)
    other.set_launch_secret(SECRET)
    other.save()
    # bob belongs to `tenant`: a link signed for `other` with the same secret names nobody there
    assert launch(client, other, agent="bob").status_code == 403


def test_a_tampered_launch_link_is_refused(client, tenant, alice):
    params = link_params(tenant)
    params["agent"] = "bob"
    response = client.get(reverse("embed-launch", args=[tenant.slug]), params)
    assert response.status_code == 403


def test_launch_links_are_off_without_a_secret(client, sim_tenant, alice):
    response = launch(client, sim_tenant)
    assert response.status_code == 403


def test_used_links_are_forgotten_once_they_would_have_expired(client, tenant, alice):
    launch(client, tenant)
    UsedLaunchLink.objects.update(expires_at="2000-01-01T00:00:00Z")
    launch(client, tenant)
    assert UsedLaunchLink.objects.count() == 1


def test_the_log_never_holds_the_signature(client, tenant, alice, caplog):
    params = link_params(tenant, expires_in=-5)
    client.get(reverse("embed-launch", args=[tenant.slug]), params)
    assert "launch link refused" in caplog.text
    assert params["signature"] not in caplog.text
    assert SECRET not in caplog.text


# --- The panel token --------------------------------------------------------------------------


def test_the_token_acts_without_cookie_or_csrf_token(tenant, alice, simulator):
    token = token_of(launch(Client(), tenant))
    client = Client(enforce_csrf_checks=True)  # no cookies at all, CSRF enforced
    response = client.post(
        reverse("go-ready"),
        {"key": uuid.uuid4().hex},
        headers={"X-Panel-Token": token, "HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "You are ready for calls." in response.content.decode()
    assert sum("/goready/" in r["path"].lower() for r in simulator.requests()) == 1


def test_without_a_token_the_same_post_needs_its_csrf_token(tenant, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice.user)
    response = client.post(reverse("go-ready"), {"key": uuid.uuid4().hex})
    assert response.status_code == 403


@pytest.mark.parametrize("bad", ["", "garbage", "eyJhIjoxfQ:1abc:forged"])
def test_a_bad_token_sends_the_frame_back_to_its_own_login(tenant, alice, bad):
    response = Client().post(
        reverse("go-ready"),
        {"key": uuid.uuid4().hex},
        headers={"X-Panel-Token": bad, "X-Panel-Embed": tenant.slug, "HX-Request": "true"},
    )
    assert response["HX-Redirect"] == reverse("embed", args=[tenant.slug])


def test_a_password_change_ends_every_token(tenant, alice):
    token = token_of(launch(Client(), tenant))
    assert embed.account_for_token(token) == alice
    alice.user.set_password("a-new-password-1")
    alice.user.save()
    assert embed.account_for_token(token) is None


def test_a_token_expires(tenant, alice, settings):
    token = token_of(launch(Client(), tenant))
    settings.EMBED_TOKEN_MAX_AGE = -1
    assert embed.account_for_token(token) is None


def test_a_deactivated_agent_loses_her_token(tenant, alice):
    token = token_of(launch(Client(), tenant))
    alice.is_active = False
    alice.save()
    assert embed.account_for_token(token) is None


def test_a_reloaded_frame_resumes_with_its_kept_token(tenant, alice):
    token = token_of(launch(Client(), tenant))
    client = Client(enforce_csrf_checks=True)
    url = reverse("embed-resume", args=[tenant.slug])
    resumed = client.post(url, {"token": token}, headers={"Origin": "http://testserver"})
    assert resumed.status_code == 200
    assert token_of(resumed) == token
    cross = client.post(url, {"token": token}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    lapsed = client.post(url, {"token": "nope"}, headers={"Origin": "http://testserver"})
    assert "has ended" in lapsed.content.decode()
    assert 'id="resume-form"' not in lapsed.content.decode()  # it cannot loop


@pytest.mark.django_db(transaction=True)
def test_the_token_opens_the_sse_stream(live_stack, tenant, alice):
    from tests.sse import SSEClient

    token = token_of(launch(Client(), tenant))
    stream = SSEClient(
        f"{live_stack.url}/panel/stream?crm={'a' * 32}", {}, headers={"X-Panel-Token": token}
    )
    try:
        first = stream.next(fragment=False)
        while first.event == "crm":  # the ownership notice may come before the snapshot
            owner = json.loads(first.text)
            first = stream.next(fragment=False)
        assert 'class="workspace-inner"' in first.text
        assert owner == {"owner": True}
    finally:
        stream.close()
    with pytest.raises(Exception, match="401"):
        SSEClient(f"{live_stack.url}/panel/stream", {}, headers={"X-Panel-Token": "forged"})


# --- The CRM channel ---------------------------------------------------------------------------


def owner_of(stream):
    """What the stream's next `crm` event says: does its page own the CRM channel?"""
    while True:
        # Released when the owner's stream ends, or lapsing after CRM_LEASE if its end went
        # unnoticed; the other stream looks every CRM_CHECK seconds. Generous: this machine
        # is shared, and the handover is what is tested, not its speed.
        event = stream.next(fragment=False, timeout=30)
        if event.event == "crm":
            return json.loads(event.text)["owner"]


@pytest.mark.django_db(transaction=True)
def test_one_embedded_stream_per_agent_owns_the_crm_channel(live_stack, tenant, alice):
    from tests.sse import SSEClient

    token = token_of(launch(Client(), tenant))
    url = f"{live_stack.url}/panel/stream?crm="
    first = SSEClient(url + "a" * 32, {}, headers={"X-Panel-Token": token})
    second = SSEClient(url + "b" * 32, {}, headers={"X-Panel-Token": token})
    try:
        assert owner_of(first) is True
        assert owner_of(second) is False
        first.close()
        assert owner_of(second) is True  # handed over when the owner's stream closed
    finally:
        second.close()


def test_the_crm_state_carries_calls_and_dispositions(alice_client, alice, simulator):
    from telephony.desk import read_desk

    post = {"HX-Request": "true"}
    alice_client.post(reverse("go-ready"), {"key": uuid.uuid4().hex}, headers=post)
    alice_client.post(
        reverse("dial"), {"key": uuid.uuid4().hex, "phone": "07700900123"}, headers=post
    )
    state = crm.state(alice, read_desk(alice))
    assert state["agent"]["state"] == "on_call"
    (call,) = state["calls"]
    assert call["phone"] == "07700900123"
    assert call["phase"] == "talking"
    assert call["firstSeen"]
    alice_client.post(
        reverse("call-action", args=[call["callId"], "hangup"]),
        {"key": uuid.uuid4().hex},
        headers=post,
    )
    alice_client.post(
        reverse("dispose", args=[call["callId"]]),
        {"c1000-key": uuid.uuid4().hex, "c1000-result_code": "SALE", "c1000-notes": "Paid"},
        headers=post,
    )
    alice.refresh_from_db()  # as each request and poll loads her: `disposed_at` moved on
    state = crm.state(alice, read_desk(alice))
    assert state["calls"] == []
    (disposed,) = state["disposed"]
    assert disposed["resultCode"] == "SALE"
    assert disposed["notes"] == "Paid"
    assert disposed["firstSeen"] == call["firstSeen"]
    assert disposed["leadId"] == call["leadId"]


@pytest.mark.django_db(transaction=True)
def test_the_migration_names_existing_tenants():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("telephony", "0001_initial"), ("controlpanel", None)]
    after = [("telephony", "0002_tenant_slug_launch_secret")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    state = executor.loader.project_state([("telephony", "0001_initial")])
    old = state.apps.get_model("telephony", "Tenant")
    for name in ("Acme Ltd", "Acme, Ltd", "***"):
        old.objects.create(name=name, base_url="https://acme.maxcontact.com/webservices")
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert sorted(Tenant.objects.values_list("slug", flat=True)) == [
        "acme-ltd",
        "acme-ltd-2",
        "tenant",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_migration_dates_each_agents_last_disposition(django_user_model):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from telephony.models import AgentAccount

    executor = MigrationExecutor(connection)
    executor.migrate([("telephony", "0003_auditentry_request_id")])
    old = executor.loader.project_state([("telephony", "0003_auditentry_request_id")]).apps
    tenant = old.get_model("telephony", "Tenant").objects.create(
        name="Acme", slug="acme", base_url="https://acme.maxcontact.com/webservices"
    )
    accounts = old.get_model("telephony", "AgentAccount")
    entries = old.get_model("telephony", "AuditEntry")
    users = [django_user_model.objects.create_user(name) for name in ("ann", "bea", "cat")]
    ann, bea, cat = (
        accounts.objects.create(user_id=user.pk, tenant=tenant, remote_user_id=n)
        for n, user in enumerate(users, start=1)
    )
    for account, method, outcome in (
        (ann, "dispose", "ok"),
        (ann, "connectcalls", "ok"),  # her latest
        (ann, "dial", "ok"),
        (bea, "dispose", "rejected"),  # never disposed
    ):
        entries.objects.create(account=account, remote_user_id=1, method=method, outcome=outcome)
    latest = entries.objects.filter(method="connectcalls").get().created_at
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    found = dict(AgentAccount.objects.values_list("pk", "disposed_at"))
    assert found == {ann.pk: latest, bea.pk: None, cat.pk: None}


@pytest.mark.django_db(transaction=True)
def test_a_page_whose_stream_reconnects_keeps_the_crm_channel(live_stack, tenant, alice):
    from tests.sse import SSEClient

    token = token_of(launch(Client(), tenant))
    url = f"{live_stack.url}/panel/stream?crm={'c' * 32}"
    first = SSEClient(url, {}, headers={"X-Panel-Token": token})
    assert owner_of(first) is True
    other = SSEClient(url.replace("c" * 32, "d" * 32), {}, headers={"X-Panel-Token": token})
    again = SSEClient(url, {}, headers={"X-Panel-Token": token})  # the same page, reconnected
    try:
        assert owner_of(again) is True
        assert owner_of(other) is False
    finally:
        for stream in (first, other, again):
            stream.close()


def test_the_crm_state_reads_the_newest_dispositions_in_two_queries_once(
    alice, django_assert_num_queries
):
    """However many calls she disposed, drawing her panel costs the same (it once cost a query
    per disposition, every render, growing through the shift), and no query at all until she
    disposes again or one leaves the window."""
    from datetime import timedelta

    from django.utils import timezone

    from telephony.desk import AgentState, Desk
    from telephony.models import AuditEntry, TrackedCall

    desk = Desk(alice, [], AgentState.READY, None, timezone.now())
    with django_assert_num_queries(0):
        assert crm.state(alice, desk)["disposed"] == []  # never disposed

    start = timezone.now() - timedelta(minutes=5)

    def dispose(n: int) -> None:
        TrackedCall.objects.create(
            account=alice, call_id=5000 + n, first_seen_at=start, phone_number=f"0770090{n:04d}"
        )
        AuditEntry.objects.create(
            account=alice,
            remote_user_id=101,
            method="dispose",
            call_id=5000 + n,
            parameters={"call_id": 5000 + n, "result_code": "SALE", "notes": f"n{n}"},
            outcome=AuditEntry.Outcome.OK,
        )
        alice.disposed_at = timezone.now()  # as telephony.desk.perform records it

    for n in range(crm.DISPOSED_KEPT + 5):
        dispose(n)
    with django_assert_num_queries(2):
        disposed = crm.state(alice, desk)["disposed"]
    assert len(disposed) == crm.DISPOSED_KEPT
    assert [d["callId"] for d in disposed] == [5000 + n for n in range(5, crm.DISPOSED_KEPT + 5)]
    assert disposed[-1]["phone"] == f"0770090{crm.DISPOSED_KEPT + 4:04d}"
    with django_assert_num_queries(0):
        assert crm.state(alice, desk)["disposed"] == disposed

    dispose(99)  # in another process: this one sees her new `disposed_at`, and reads again
    with django_assert_num_queries(2):
        again = crm.state(alice, desk)["disposed"]
    assert [d["callId"] for d in again] == [d["callId"] for d in disposed[1:]] + [5099]

    # The oldest leave the window without a query; a last disposition older than the window
    # means none at all.
    from datetime import datetime
    from unittest import mock

    third = datetime.fromisoformat(again[2]["at"])
    later = third + crm.DISPOSED_FOR
    with mock.patch("django.utils.timezone.now", return_value=later), django_assert_num_queries(0):
        assert crm.state(alice, desk)["disposed"] == again[2:]
    alice.disposed_at = timezone.now() - crm.DISPOSED_FOR - timedelta(seconds=1)
    with django_assert_num_queries(0):
        assert crm.state(alice, desk)["disposed"] == []
