"""The ASGI entry point: requests on kept threads (controlpanel.asgi.RequestThreads)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.signals import request_finished
from django.db import connection, connections

# Importing controlpanel.asgi checks the stored secrets' keys: the database, at import.
pytestmark = pytest.mark.django_db(transaction=True)


def _run(scenario: Any) -> None:
    """In a thread of its own: the browser tests leave an event loop running on this one."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


async def _until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 2 s")


def test_a_thread_is_kept_once_idle_and_never_makes_a_request_wait():
    from controlpanel.asgi import RequestThreads

    threads = RequestThreads(keep=1)

    async def scenario() -> None:
        first = threads.take()
        second = threads.take()  # the first is in use: a new one, never a queue
        assert second is not first
        busy = threading.Event()
        first.submit(busy.wait, 5)  # a view whose client went away, still running
        threads.give_back(first)
        threads.give_back(second)
        await _until(lambda: threads._idle == [second])
        assert threads.take() is second
        assert threads.take() is not first  # still busy: not handed out
        busy.set()
        await _until(lambda: threads._idle == [first])
        threads.give_back(second)  # one more than `keep`: stopped
        await asyncio.sleep(0.1)
        assert threads._idle == [first]
        assert second._shutdown

    _run(scenario)


async def _get(path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(10)  # no disconnect while the request runs
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    from controlpanel.asgi import application

    await application(scope, receive, send)
    return int(sent[0]["status"])


def test_requests_one_after_another_share_a_thread_and_its_database_connection():
    """Django's handler gave each request a new thread, and so a new database connection."""
    from controlpanel.asgi import application

    seen: list[tuple[str, Any]] = []

    def note(**_: Any) -> None:  # after Django's own close_old_connections
        connection.ensure_connection()
        seen.append((threading.current_thread().name, connection.connection))

    async def two_requests() -> None:
        assert await _get("/healthz") == 200
        await _until(lambda: application.threads._idle)
        assert await _get("/healthz") == 200
        await _until(lambda: application.threads._idle)  # kept again: closed below

    request_finished.connect(note)
    try:
        _run(two_requests)
    finally:
        request_finished.disconnect(note)
        for kept in application.threads._idle:  # PostgreSQL drops the test database at the end
            kept.submit(connections.close_all).result()
    (thread, kept), (again, reused) = seen
    assert thread.startswith("request") and again == thread
    assert reused is kept
