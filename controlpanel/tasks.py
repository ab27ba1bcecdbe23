"""Celery tasks: tasks are views for the queue (CONVENTIONS.md 6).

`dispatch` runs every second (beat): it claims the present agents whose poll is due and fans
them out in batches to the `poll` queue. `poll_batch` polls its agents concurrently on a thread
pool. Each poll reads getcalls for one agent under a per-agent lock, renders the same workspace
partial the views render, and publishes it only when what she sees changed.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import redis
from celery import shared_task
from django.conf import settings
from django.db import connection

from telephony.desk import read_desk
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
    workers = min(len(account_ids), settings.POLL_THREADS) or 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
        list(pool.map(_poll_in_thread, account_ids))


def _poll_in_thread(account_id: int) -> None:
    # Log lines of this poll (its getcalls included) carry an id of their own.
    REQUEST_ID.set(new_id(f"poll-{account_id}-"))
    try:
        refresh_agent(account_id)
    except Exception:  # one agent's failure must not stop the batch
        logger.exception("poll of account %s failed", account_id)
    finally:
        # This thread ends with its batch: its database connection must not outlive it (on
        # PostgreSQL, connections left to the garbage collector ran out under load).
        connection.close()


def refresh_agent(account_id: int) -> bool:
    """Poll one agent now; returns True when a changed workspace was published."""
    token = uuid.uuid4().hex
    # The lock expires after two ticks, so a killed worker delays her next poll by one tick at
    # most; while a poll is merely slow, the lock is renewed and no second poll starts.
    if not live.acquire(account_id, token, settings.POLL_LOCK_SECONDS):
        return False
    try:
        account = (
            AgentAccount.objects.select_related("tenant", "user")
            .filter(pk=account_id, is_active=True)
            .first()
        )
        if account is None:
            return False
        started = time.time()
        with live.renewed(account_id, token, settings.POLL_LOCK_SECONDS):
            desk = read_desk(account)
        live.record_poll(account_id, account.tenant_id, desk, took=time.time() - started)
        if live.acted_since(account_id, started):
            return False  # an action answered with a newer state while we were reading
        published = live.publish(
            account_id, desk, lambda version: workspace.render(account, desk, version=version)
        )
        return published.changed
    except redis.RedisError:
        logger.warning("Redis unavailable while polling account %s", account_id)
        return False
    finally:
        with contextlib.suppress(redis.RedisError):  # the lock expires by itself
            live.release(account_id, token)
