"""Celery tasks: tasks are views for the queue (CONVENTIONS.md 6).

`dispatch` runs every second (beat): it claims the present agents whose poll is due and fans
them out in batches to the `poll` queue. `poll_batch` polls its agents concurrently on a thread
pool. Each poll reads getcalls for one agent under a per-agent lock, renders the same workspace
partial the views render, and publishes it only when what she sees changed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis
from celery import shared_task
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from telephony.client import MaxContactClient
from telephony.desk import AgentState, desk_from_calls, desk_without_answer
from telephony.entities import Call
from telephony.errors import MaxContactError
from telephony.models import AgentAccount

from . import live, workspace
from .requestlog import REQUEST_ID, new_id

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def dispatch() -> int:
    """Fan the due agents out to the poll queue; returns how many were due."""
    live.note_dispatch()
    due = live.claim_due()
    size = settings.POLL_BATCH_SIZE
    for start in range(0, len(due), size):
        # A batch not started within a second is stale: the next tick sends a fresh one.
        poll_batch.apply_async(args=[due[start : start + size]], expires=settings.POLL_EXPIRES)
    return len(due)


@shared_task(ignore_result=True)
def poll_batch(account_ids: list[int]) -> None:
    refresh_agents(account_ids)


_pool_guard = threading.Lock()
_pools: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """The process's poll threads, kept: a thread keeps its HTTP connection to MaxContact and
    its database connection from one poll to the next (a pool per batch opened both anew on
    every poll). Created after the worker forks, on the first batch (of any Celery thread)."""
    with _pool_guard:
        if not _pools:
            _pools.append(
                ThreadPoolExecutor(max_workers=settings.POLL_THREADS, thread_name_prefix="poll")
            )
        return _pools[0]


def refresh_agents(account_ids: list[int], *, inline: bool = False) -> dict[int, bool]:
    """Poll a batch of agents concurrently; for each, whether a changed workspace was published.

    Redis is asked once for the whole batch before (locks, last actions) and once after (the
    quiet polls' bookkeeping): per poll, two round trips became a 25th of two.
    `inline`: poll one after another in this thread (tests, on this thread's transaction).
    """
    tokens = {account_id: uuid.uuid4().hex for account_id in account_ids}
    try:
        begun = live.begin_polls(tokens, settings.POLL_LOCK_SECONDS)
    except redis.RedisError:
        logger.warning("Redis unavailable while polling %d agents", len(account_ids))
        return dict.fromkeys(account_ids, False)
    quiet: queue.SimpleQueue[live.QuietPoll] = queue.SimpleQueue()

    def poll(account_id: int) -> bool:
        return _poll(account_id, tokens[account_id], begun[account_id], quiet)

    done: dict[int, bool] = {}
    if inline:
        done = {account_id: poll(account_id) for account_id in begun}
    else:
        futures = {_pool().submit(_in_thread, poll, a): a for a in begun}
        pending = set(futures)
        while pending:
            # Quiet polls are recorded (and unlocked) every QUIET_FLUSH seconds, not when the
            # whole batch is done: one agent's slow MaxContact must not hold the others.
            finished, pending = concurrent.futures.wait(pending, timeout=QUIET_FLUSH)
            done.update((futures[f], f.result()) for f in finished)
            _end_quiet(quiet)
    _end_quiet(quiet)
    return {account_id: done.get(account_id, False) for account_id in account_ids}


QUIET_FLUSH = 0.25


def _end_quiet(quiet: queue.SimpleQueue[live.QuietPoll]) -> None:
    polls = []
    while not quiet.empty():
        polls.append(quiet.get_nowait())
    try:
        live.end_quiet_polls(polls)
    except redis.RedisError:  # their locks expire by themselves
        logger.warning("Redis unavailable while recording %d polls", len(polls))


def refresh_agent(account_id: int) -> bool:
    """Poll one agent now, in this thread; True when a changed workspace was published."""
    return refresh_agents([account_id], inline=True)[account_id]


def _in_thread(poll: Any, account_id: int) -> bool:
    # Log lines of this poll (its getcalls included) carry an id of their own.
    REQUEST_ID.set(new_id(f"poll-{account_id}-"))
    try:
        return bool(poll(account_id))
    except Exception:  # one agent's failure must not stop the batch
        logger.exception("poll of account %s failed", account_id)
        return False
    finally:
        # The thread lives on; a connection that broke or outlived CONN_MAX_AGE must not.
        close_old_connections()


@dataclass
class _Known:
    """What this process keeps between two polls of an agent, so that a poll whose answer is
    the same as the last one touches neither the database nor the template engine."""

    account: AgentAccount
    client: MaxContactClient
    config: str  # the configuration epoch when loaded (live.begin_polls): an admin's edit reloads
    loaded_at: float
    calls: list[Call] | None = None  # the last answer fully processed (None: none yet)
    read_at: float = 0.0  # when that read began
    state: AgentState = AgentState.NOT_READY  # her state after it
    version: int = 0  # her published version after it: another writer (a view, a page load,
    # another worker process) changes it, and then the next poll cannot be a quiet one


_known: dict[int, _Known] = {}
KNOWN_SECONDS = 60.0  # reload at least this often: edits made without a save signal


def _load(account_id: int, config: str) -> _Known | None:
    account = (
        AgentAccount.objects.select_related("tenant", "user")
        .filter(pk=account_id, is_active=True)
        .first()
    )
    if account is None:
        _known.pop(account_id, None)
        return None
    known = _Known(account, account.client(), config, time.monotonic())
    _known[account_id] = known
    return known


def _poll(
    account_id: int, token: str, begun: live.PollBegun, quiet: queue.SimpleQueue[live.QuietPoll]
) -> bool:
    """One agent's poll, her lock held; a quiet one is added to `quiet` (its lock released
    with the batch's bookkeeping), anything else is recorded and published here."""
    try:
        known = _known.get(account_id)
        if (
            known is None
            or known.config != begun.config
            or time.monotonic() - known.loaded_at > KNOWN_SECONDS
        ):
            known = _load(account_id, begun.config)
            if known is None:
                return False
        started = time.time()
        with live.renewed(account_id, token, settings.POLL_LOCK_SECONDS):
            try:
                calls: list[Call] | MaxContactError = known.client.get_calls()
            except MaxContactError as error:
                calls = error
        took = time.time() - started
        if (
            isinstance(calls, list)
            and calls == known.calls
            and begun.action_at <= known.read_at
            and begun.version == known.version
        ):
            # The same answer as last time and no action since: she sees the same thing. No
            # database, no template, and no Redis round trip of its own: the most common poll
            # by far (docs/performance.md).
            quiet.put(live.QuietPoll(account_id, known.account.tenant_id, known.state, took, token))
            token = ""  # released with the batch
            return False
        # Something may have changed: the full path, on her row as it is now. What this
        # process keeps is forgotten until the path has published (a failure half-way must
        # not make the next, identical answer look already handled).
        known.calls = None
        account = known.account
        account.refresh_from_db(fields=AgentAccount.DESK_FIELDS)
        if isinstance(calls, MaxContactError):
            desk = desk_without_answer(account, calls)
        else:
            desk = desk_from_calls(account, calls, timezone.now())
        live.record_poll(account_id, account.tenant_id, desk, took=took)
        if live.acted_since(account_id, started):
            return False  # an action answered with a newer state while we were reading
        published = live.publish(
            account_id, desk, lambda version: workspace.render(account, desk, version=version)
        )
        if isinstance(calls, list):
            known.calls, known.read_at, known.state = calls, started, desk.state
            known.version = published.version
        return published.changed
    except redis.RedisError:
        logger.warning("Redis unavailable while polling account %s", account_id)
        return False
    finally:
        if token:
            with contextlib.suppress(redis.RedisError):  # the lock expires by itself
                live.release(account_id, token)
