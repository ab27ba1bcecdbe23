"""Server-Sent Events: each open panel gets its agent's workspace whenever it changes.

Served by an async view under uvicorn (ASGI); WSGI would buffer the stream whole. One Redis
pub/sub connection per server process (the `Hub`) subscribes to the channels of the agents
that have a panel open in this process and fans each message out to their streams, so Redis
connections grow with processes, not with tabs.

A stream first sends the latest snapshot (so a reconnecting panel misses nothing), then every
published workspace, with `id:` the agent's version number; a `heartbeat` event every
HEARTBEAT seconds keeps proxies from closing it and tells the page that MaxContact was read
recently. If Redis restarts, the hub reconnects and every stream gets the latest snapshot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import json
import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, close_old_connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from telephony.desk import read_desk
from telephony.models import AgentAccount

from . import live, workspace

logger = logging.getLogger(__name__)
HEARTBEAT = 15.0
STALE = 3.0  # a snapshot whose agent was not read for this long is read again on connect
RESYNC = "__resync__"


class Hub:
    """This process's one Redis subscriber, fanning messages out to local streams."""

    def __init__(self) -> None:
        self.queues: dict[int, set[asyncio.Queue[str]]] = defaultdict(set)
        self.redis: aioredis.Redis | None = None
        self.pubsub: Any = None
        self.task: asyncio.Task[None] | None = None

    def join(self, account_id: int) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=100)
        self.queues[account_id].add(queue)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        return queue

    def leave(self, account_id: int, queue: asyncio.Queue[str]) -> None:
        self.queues[account_id].discard(queue)
        if not self.queues[account_id]:
            del self.queues[account_id]

    def _deliver(self, account_id: int, message: str) -> None:
        for queue in list(self.queues.get(account_id, ())):
            if queue.full():  # a stalled client: drop its oldest message, keep the newest
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    async def _run(self) -> None:
        delay = 0.5
        while self.queues:
            try:
                await self._listen()
                delay = 0.5
            except (redis.RedisError, OSError) as error:
                logger.warning("live updates: Redis unavailable (%s); retrying", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await self._close()
        self.task = None

    async def _listen(self) -> None:
        self.redis = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1.0)
        self.pubsub = self.redis.pubsub()
        subscribed: set[int] = set()
        first = True
        while self.queues:
            wanted = set(self.queues)
            joined = wanted - subscribed
            if joined:
                await self.pubsub.subscribe(*(live.channel(a) for a in joined))
            if subscribed - wanted:
                await self.pubsub.unsubscribe(*(live.channel(a) for a in subscribed - wanted))
            subscribed = wanted
            # Whatever was published before a subscription took effect (or while Redis was
            # away) is in the snapshot: each stream concerned reads it again.
            for account_id in wanted if first else joined:
                self._deliver(account_id, RESYNC)
            first = False
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message and message.get("type") == "message":
                account_id = int(message["channel"].decode().rsplit(":", 1)[1])
                self._deliver(account_id, message["data"].decode())

    async def _close(self) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        self.pubsub = self.redis = None


_hubs: dict[int, Hub] = {}


def hub() -> Hub:
    """The hub of the running event loop (uvicorn runs one loop per process)."""
    loop = asyncio.get_running_loop()
    if id(loop) not in _hubs:
        _hubs[id(loop)] = Hub()
    return _hubs[id(loop)]


def sse(data: str, *, event: str | None = None, event_id: int | None = None) -> str:
    """One SSE message; every line of a multi-line fragment gets its own `data:`."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


# MaxContact reads a connecting stream makes (slow when MaxContact is) get their own threads,
# so that they never hold up the quick Redis calls of every open stream on the loop's pool.
_VENDOR_READS = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="read")


def off_loop(function: Any, executor: concurrent.futures.Executor | None = None) -> Any:
    """`function` run on the event loop's shared thread pool.

    Not asgiref's default (thread_sensitive=True): that gives each request a thread of its own
    for its whole life, and a stream lives for hours, so every open panel held an idle thread
    (about 290 KiB of RSS per stream at 200 streams; docs/performance.md). Database work
    done here keeps the pool thread's connection, dropped when unusable or too old."""

    def run(*args: Any) -> Any:
        close_old_connections()
        return function(*args)

    if executor is None:
        return sync_to_async(run, thread_sensitive=False)

    async def on(*args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            executor, contextvars.copy_context().run, run, *args
        )

    return on


def _fresh_snapshot(account_id: int) -> dict[str, Any] | None:
    """Read the agent now and publish, when no snapshot exists yet (her first panel)."""
    account = AgentAccount.objects.select_related("tenant", "user").get(pk=account_id)
    desk = read_desk(account)
    live.publish(account_id, desk, lambda v: workspace.render(account, desk, version=v))
    return live.snapshot(account_id)


async def _snapshot(account_id: int) -> dict[str, Any] | None:
    """The latest workspace; read fresh when nobody polled her lately (no panel was open)."""
    try:
        found = await off_loop(live.snapshot)(account_id)
        read_at = float((await off_loop(live.agent_info)(account_id)).get("read_at", 0))
        if found is None or time.time() - read_at > STALE:
            found = await off_loop(_fresh_snapshot, _VENDOR_READS)(account_id)
        return found
    except redis.RedisError:
        return None


async def _heartbeat(account_id: int) -> str:
    try:
        info = await off_loop(live.agent_info)(account_id)
    except redis.RedisError:
        return sse(json.dumps({"redis": False}), event="heartbeat")
    read_at = float(info.get("read_at", 0) or 0)
    return sse(
        json.dumps({"redis": True, "read_at": read_at, "errors": int(info.get("errors", 0) or 0)}),
        event="heartbeat",
    )


CRM_PAGE = re.compile(r"[0-9a-f]{16,32}")


async def _still_allowed(account_id: int) -> bool:
    """Her account and her user are still active (an admin may disable either at any time).
    A database that does not answer right now does not cut her off."""
    try:
        return bool(await off_loop(_active)(account_id))
    except DatabaseError:
        return True


def _active(account_id: int) -> bool:
    return AgentAccount.objects.filter(pk=account_id, is_active=True, user__is_active=True).exists()


def _account_of(request: HttpRequest) -> int | None:
    """Her active account's id, or None; 0 when nobody is logged in (session or panel token).
    Her account was read with her user (controlpanel.backends, or the token's account)."""
    user = request.user
    if not user.is_authenticated:
        return 0
    account = getattr(user, "agent_account", None)
    return account.pk if account is not None and account.is_active else None


def _forget_user(request: HttpRequest) -> None:
    """A stream holds its request for hours, and with it the user read to let it in, her
    account and its tenant: about 5 KiB a stream (docs/performance.md, item 4). The request
    keeps only her id, for the request log."""
    request.logged_user_id = request.user.pk  # type: ignore[attr-defined]
    request.__dict__.pop("_cached_user", None)
    request.user = AnonymousUser()


async def _crm_owner(account_id: int, stream_id: str) -> bool | None:
    """Whether this stream's page owns the agent's CRM channel (None: Redis did not say)."""
    try:
        return await off_loop(live.claim_crm_channel)(account_id, stream_id)
    except redis.RedisError:
        return None


async def events(account_id: int, crm: str = "") -> AsyncIterator[str]:
    """The agent's workspaces as they change. `crm`: the id of an embedded page; one such page
    per agent (the owner, told by a `crm` event) sends the CRM its call events. The lease is
    held by the page, not the connection: a page whose stream reconnects keeps it."""
    stream_id = uuid.uuid4().hex
    my_hub = hub()
    queue = my_hub.join(account_id)
    present_at = 0.0
    owner: bool | None = None
    checked_at = 0.0
    beat_at = time.monotonic()
    wait = min(HEARTBEAT, live.CRM_CHECK) if crm else HEARTBEAT
    try:
        yield "retry: 2000\n\n"
        sent_version = 0
        message: str | None = RESYNC
        while True:
            now = time.time()
            if (
                now - present_at > live.STREAM_REFRESH
                and present_at
                and not await _still_allowed(account_id)
            ):
                return  # disabled by an admin meanwhile: her panel stops receiving
            if crm and time.monotonic() - checked_at >= live.CRM_CHECK:
                checked_at = time.monotonic()
                claimed = await _crm_owner(account_id, crm)
                if claimed is not None and claimed != owner:
                    owner = claimed
                    yield sse(json.dumps({"owner": owner}), event="crm")
            if now - present_at > live.STREAM_REFRESH:
                try:
                    await off_loop(live.stream_opened)(account_id, stream_id)
                    present_at = now
                except redis.RedisError:
                    pass  # presence resumes when Redis is back
            if message == RESYNC:
                if present_at:  # after a Redis restart her presence must be written again
                    with contextlib.suppress(redis.RedisError):
                        await off_loop(live.stream_opened)(account_id, stream_id)
                snapshot = await _snapshot(account_id)
                message = json.dumps(snapshot) if snapshot else None
            if message:
                payload = json.loads(message)
                if payload["version"] != sent_version:
                    sent_version = payload["version"]
                    yield sse(payload["html"], event_id=sent_version)
            try:
                message = await asyncio.wait_for(queue.get(), timeout=wait)
            except TimeoutError:
                message = None
                if time.monotonic() - beat_at >= HEARTBEAT - 0.01:
                    beat_at = time.monotonic()
                    yield await _heartbeat(account_id)
    finally:
        my_hub.leave(account_id, queue)
        with contextlib.suppress(Exception):
            await off_loop(live.stream_closed)(account_id, stream_id)
        if owner:  # hand the CRM channel over now, not when the lease runs out
            with contextlib.suppress(Exception):
                await off_loop(live.release_crm_channel)(account_id, crm)


async def stream(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    account = await off_loop(_account_of)(request)
    if account == 0:
        return HttpResponse(status=401)
    if account is None:
        return HttpResponse(status=403)
    _forget_user(request)  # read already: no database here
    crm = request.GET.get("crm", "")
    if not CRM_PAGE.fullmatch(crm):
        crm = ""
    response = StreamingHttpResponse(events(account, crm), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
