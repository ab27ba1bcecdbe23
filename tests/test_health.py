"""/healthz and /readyz with each part down, on processes of their own: a private Redis, uvicorn,
then a Celery worker and beat. Nothing here is shared with other tests' live stack, whose beat
would otherwise tick for us."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests
from django.db import OperationalError
from django.urls import reverse

from controlpanel import health
from telephony.models import AgentAccount, Tenant
from tests.servers import RedisServer, free_port, start_celery, start_panel, stop

pytestmark = pytest.mark.django_db(transaction=True)


def ready(url: str) -> tuple[int, dict]:
    response = requests.get(f"{url}/readyz", timeout=10)
    return response.status_code, json.loads(response.text)


def until(url: str, status: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, body = ready(url)
        if code == status:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.5)


@pytest.fixture
def own_stack(tmp_path):
    redis_server = RedisServer(f"redis://127.0.0.1:{free_port()}/0")
    redis_server.start()
    env = {"REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0"}
    panel = start_panel(env)
    processes: list[subprocess.Popen[bytes]] = []
    stack = {"redis": redis_server, "panel": panel, "env": env, "processes": processes}
    try:
        yield stack
    finally:
        for process in processes:
            stop(process)
        stop(panel.process)
        redis_server.stop()


def test_readiness_follows_each_part(own_stack, alice, simulator, tmp_path):
    url = own_stack["panel"].url
    down = Tenant.objects.create(name="Down", base_url=f"http://127.0.0.1:{free_port()}/ws")
    AgentAccount.objects.create(
        user=alice.user.__class__.objects.create_user("dora", password="x-123456789"),
        tenant=down,
        remote_user_id=104,
        static_token_encrypted="",
    )

    # No beat, no worker: not ready, and it says which parts are missing.
    code, body = ready(url)
    assert code == 503
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert not body["checks"]["dispatcher"]["ok"]
    assert "beat" in body["checks"]["dispatcher"]["detail"]
    assert body["checks"]["worker"] == {"ok": False, "detail": "no Celery worker answered"}
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200

    # Worker and beat up: ready. One tenant's MaxContact is down: reported, still ready.
    env = own_stack["env"]
    own_stack["processes"] += [
        start_celery("worker", env),
        start_celery("beat", env, workdir=tmp_path),
    ]
    body = until(url, 200)
    assert body["maxcontact"][alice.tenant.slug]["ok"] is True
    assert body["maxcontact"][down.slug]["ok"] is False

    # Redis gone: not ready, but alive; back by itself when Redis is.
    own_stack["redis"].stop()
    body = until(url, 503)
    assert body["checks"]["redis"]["ok"] is False
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
    own_stack["redis"].start()
    until(url, 200, timeout=30)

    # Beat stopped: within a few ticks the dispatcher check fails.
    stop(own_stack["processes"][1])
    body = until(url, 503, timeout=health.TICK_STALE + 10)
    assert not body["checks"]["dispatcher"]["ok"]
    assert body["checks"]["worker"]["ok"]


def test_a_database_that_does_not_answer_makes_the_panel_not_ready(client, monkeypatch):
    def broken():
        raise OperationalError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", broken)
    response = client.get(reverse("readyz"))
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["checks"]["database"] == {"ok": False, "detail": "OperationalError"}
    assert client.get(reverse("healthz")).status_code == 200
