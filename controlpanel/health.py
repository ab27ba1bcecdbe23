"""Health endpoints for load balancers and monitors.

- `/healthz`: the process answers. Nothing else is checked (a load balancer must not take a
  web process out because Redis blinked).
- `/readyz`: each part the panel needs, with its state, as JSON; 503 when the panel cannot
  serve agents (database, Redis, the dispatcher's tick, a Celery worker). MaxContact per
  tenant is reported (a TCP connect to its host, in parallel, 1 s at most) but never makes the
  panel "not ready": one customer's MaxContact outage must not take every web process out.
"""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import redis
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from telephony.models import Tenant

from . import live

TICK_STALE = 10.0  # seconds without a dispatcher tick before readiness fails
CONNECT_TIMEOUT = 1.0


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "alive"})


def _database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        return {"ok": False, "detail": f"{type(error).__name__}"}
    return {"ok": True, "detail": connection.vendor}


def _redis() -> dict[str, Any]:
    try:
        live.client().ping()
    except redis.RedisError as error:
        return {"ok": False, "detail": type(error).__name__}
    return {"ok": True, "detail": "ping"}


def _dispatcher() -> dict[str, Any]:
    try:
        last = live.last_dispatch()
    except redis.RedisError:
        return {"ok": False, "detail": "unknown: Redis did not answer"}
    if last is None:
        return {"ok": False, "detail": "no tick yet: is Celery beat running?"}
    age = time.time() - last
    return {"ok": age < TICK_STALE, "detail": f"last tick {age:.1f} s ago"}


def _worker() -> dict[str, Any]:
    from .celery import app

    try:
        replies = app.control.ping(timeout=CONNECT_TIMEOUT) or []
    except Exception as error:  # the broker itself is down: Redis says so above
        return {"ok": False, "detail": type(error).__name__}
    if not replies:
        return {"ok": False, "detail": "no Celery worker answered"}
    return {"ok": True, "detail": f"{len(replies)} worker(s)"}


def _reachable(base_url: str) -> dict[str, Any]:
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    started = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        return {"ok": False, "detail": f"{host}:{port} {type(error).__name__}"}
    return {"ok": True, "detail": f"{host}:{port} in {(time.monotonic() - started) * 1000:.0f} ms"}


def _tenants() -> dict[str, Any]:
    tenants = list(
        Tenant.objects.filter(agents__is_active=True).distinct().values_list("slug", "base_url")
    )
    if not tenants:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(tenants))) as pool:
        results = pool.map(lambda t: _reachable(t[1]), tenants)
        return {slug: result for (slug, _), result in zip(tenants, results, strict=True)}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    checks: dict[str, Any] = {"database": _database(), "redis": _redis()}
    checks["dispatcher"] = _dispatcher()
    checks["worker"] = (
        _worker() if checks["redis"]["ok"] else {"ok": False, "detail": "needs Redis"}
    )
    try:
        maxcontact = _tenants() if checks["database"]["ok"] else {}
    except DatabaseError:
        maxcontact = {}
    ready = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks, "maxcontact": maxcontact}
    return HttpResponse(
        json.dumps(body, indent=1),
        status=200 if ready else 503,
        content_type="application/json",
    )
