"""MaxContact's directory lists (campaigns, users, result codes, queues), cached briefly.

They change rarely and every wrap-up form needs the result codes, so each list is kept in the
shared cache for a few minutes per agent account. When Redis does not answer, the list is read
from MaxContact directly: a cache outage costs speed, never a broken panel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

from telephony.entities import AcdQueue, Campaign, ResultCode, User
from telephony.models import AgentAccount

logger = logging.getLogger(__name__)
T = TypeVar("T")
TTL = 300


def _cached(account: AgentAccount, name: str, read: Callable[[], T]) -> T:
    key = f"directory:{account.pk}:{account.tenant_id}:{name}"
    try:
        value: T | None = cache.get(key)
    except Exception:  # Redis down or restarting
        logger.warning("cache unavailable reading %s", name)
        return read()
    if value is not None:
        return value
    value = read()
    try:
        cache.set(key, value, TTL)
    except Exception:
        logger.warning("cache unavailable storing %s", name)
    return value


def result_codes(account: AgentAccount) -> list[ResultCode]:
    return _cached(account, "resultcodes", lambda: account.client().result_codes())


def campaigns(account: AgentAccount) -> list[Campaign]:
    return _cached(account, "campaigns", lambda: account.client().campaigns())


def users(account: AgentAccount) -> list[User]:
    return _cached(account, "users", lambda: account.client().users())


def acd_queues(account: AgentAccount) -> list[AcdQueue]:
    return _cached(account, "acdqueues", lambda: account.client().acd_queues())
