"""Live state in Redis: who has a panel open, when to poll her next, and what she last saw.

Keys (all under `live:`):
- `present`               ZSET account id -> time her last open stream stops counting
- `streams:<id>`          ZSET stream id -> expiry, one member per open panel (tab)
- `due`                   ZSET account id -> when her next poll is due (present agents only)
- `agent:<id>`            HASH interval, errors, digest, version, read_at, action_at
- `snapshot:<id>`         STRING JSON {"version", "html"}: what a (re)connecting panel gets first
- `lock:<id>`             STRING a poll in progress (expires by itself)
- `config`                STRING an epoch, new whenever an admin saves an account or tenant
- `tenant:<id>:errors`    STRING consecutive MaxContact failures of a tenant (expires)
- channel `agent:<id>`    JSON {"version", "html"} for every changed workspace

An agent with no open panel has no key here and costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from django.conf import settings

from telephony.desk import AgentState, Desk
from telephony.errors import Unreachable

PREFIX = "live:"
PRESENT = f"{PREFIX}present"
DUE = f"{PREFIX}due"
STREAM_TTL = 30.0  # a stream refreshes its presence every STREAM_REFRESH seconds
STREAM_REFRESH = 10.0

# Poll intervals (seconds): fast while something can happen any moment, slow while idle.
FAST = 1.0
WRAP_UP = 2.0
IDLE = 5.0
MAX_BACKOFF = 30.0
SLACK = 0.1
AGENT_TTL = 3600  # an agent's live state is forgotten an hour after her last change


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=30,
        decode_responses=True,
    )


@cache
def _script(source: str) -> Any:
    """A Lua script, sent by its SHA (and loaded again if Redis forgot it)."""
    return client().register_script(source)


# Delete KEYS[1] if it still holds ARGV[1] (a lock or a lease released by its holder only).
_DELETE_IF_HELD = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def channel(account_id: int) -> str:
    return f"{PREFIX}agent:{account_id}"


def _agent(account_id: int) -> str:
    return f"{PREFIX}agent:{account_id}"


def _snapshot(account_id: int) -> str:
    return f"{PREFIX}snapshot:{account_id}"


# --- Presence ---------------------------------------------------------------------------------


def stream_opened(account_id: int, stream_id: str, now: float | None = None) -> None:
    """A panel of this agent is open: she is present, and polled from now on."""
    now = time.time() if now is None else now
    expires = now + STREAM_TTL
    pipe = client().pipeline()
    pipe.zadd(f"{PREFIX}streams:{account_id}", {stream_id: expires})
    pipe.zadd(PRESENT, {str(account_id): expires}, gt=True)  # GT still adds new members
    pipe.zadd(DUE, {str(account_id): now}, nx=True)
    pipe.expire(f"{PREFIX}streams:{account_id}", int(STREAM_TTL * 2))
    pipe.execute()


_CLOSE_STREAM = """
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[3])
if redis.call('zcard', KEYS[1]) == 0 then
  redis.call('zrem', KEYS[2], ARGV[2])
  redis.call('zrem', KEYS[3], ARGV[2])
end
"""


def stream_closed(account_id: int, stream_id: str, now: float | None = None) -> None:
    """A panel closed; when it was her last one, polling her stops at once (atomically, so
    a tab opening at the same moment is never left unpolled)."""
    now = time.time() if now is None else now
    _script(_CLOSE_STREAM)(
        keys=[f"{PREFIX}streams:{account_id}", PRESENT, DUE], args=[stream_id, account_id, now]
    )


# --- The CRM channel: one embedded tab per agent tells the CRM about her calls -----------------

CRM_LEASE = 6.0  # an owner that vanished without closing its stream is replaced after this
CRM_CHECK = 2.0  # how often an embedded stream renews (or tries to take) the lease

_CLAIM_CRM = """
local holder = redis.call('get', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
  return 1
end
return 0
"""


def claim_crm_channel(account_id: int, stream_id: str) -> bool:
    """Take or renew the agent's CRM channel for this stream; False while another holds it."""
    key = f"{PREFIX}crm:{account_id}"
    return bool(_script(_CLAIM_CRM)(keys=[key], args=[stream_id, int(CRM_LEASE * 1000)]))


def release_crm_channel(account_id: int, stream_id: str) -> None:
    _script(_DELETE_IF_HELD)(keys=[f"{PREFIX}crm:{account_id}"], args=[stream_id])


def note_dispatch(now: float | None = None) -> None:
    """The dispatcher ran (for /readyz: is beat alive?)."""
    client().set(f"{PREFIX}dispatch:last", time.time() if now is None else now, ex=3600)


def last_dispatch() -> float | None:
    raw = client().get(f"{PREFIX}dispatch:last")
    return float(raw) if raw is not None else None


def present_agents(now: float | None = None) -> set[int]:
    now = time.time() if now is None else now
    return {int(str(m)) for m in client().zrangebyscore(PRESENT, now, "+inf")}


# --- Scheduling -------------------------------------------------------------------------------


def claim_due(now: float | None = None, limit: int = 10_000) -> list[int]:
    """Present agents whose poll is due; their next due time is pushed one interval on.

    Agents whose presence expired are dropped from the schedule here.
    """
    now = time.time() if now is None else now
    r = client()
    expired = [str(m) for m in r.zrangebyscore(PRESENT, "-inf", f"({now}")]
    if expired:
        pipe = r.pipeline()
        pipe.zrem(PRESENT, *expired)
        pipe.zrem(DUE, *expired)
        pipe.execute()
    due = [int(str(m)) for m in r.zrangebyscore(DUE, "-inf", now, start=0, num=limit)]
    if not due:
        return []
    pipe = r.pipeline()
    for account_id in due:
        pipe.hget(_agent(account_id), "interval")
    intervals = pipe.execute()
    pipe = r.pipeline()
    for account_id, interval in zip(due, intervals, strict=True):
        # A little early, so that the tick one interval from now finds her due (beat's ticks
        # jitter by milliseconds; missing one would double her interval).
        pipe.zadd(DUE, {str(account_id): now + float(interval or FAST) - SLACK}, xx=True)
    pipe.execute()
    return due


def interval_for(state: AgentState, errors: int, tenant_errors: int) -> float:
    """Fast while a call can arrive or is up, slower when idle, backing off on errors."""
    base = {AgentState.ON_CALL: FAST, AgentState.READY: FAST, AgentState.WRAP_UP: WRAP_UP}.get(
        state, IDLE
    )
    if errors:
        base = max(base, min(MAX_BACKOFF, FAST * 2**errors))
    if tenant_errors >= 3:  # the tenant itself is struggling: every agent of it slows down
        base = max(base, min(MAX_BACKOFF, FAST * 2 ** (tenant_errors - 2)))
    return base


# --- Locks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollBegun:
    action_at: float  # her last action (0: none known)
    config: str  # the configuration epoch (bump_config)
    version: int  # her workspace's published version: who else wrote her desk


CONFIG = f"{PREFIX}config"


# A batch's locks, last actions and published versions, and the configuration epoch. KEYS:
# per agent her lock and her hash, then CONFIG; ARGV: the lock's lifetime (ms), then per agent
# her lock token. Returns per agent {locked, action_at, version}, then the epoch ('' for none).
_BEGIN_POLLS = """
local out = {}
local n = (#KEYS - 1) / 2
for i = 0, n - 1 do
  local locked = redis.call('set', KEYS[2 * i + 1], ARGV[i + 2], 'NX', 'PX', ARGV[1])
  local seen = redis.call('hmget', KEYS[2 * i + 2], 'action_at', 'version')
  out[#out + 1] = locked and 1 or 0
  out[#out + 1] = seen[1] or ''
  out[#out + 1] = seen[2] or ''
end
out[#out + 1] = redis.call('get', KEYS[#KEYS]) or ''
return out
"""


def begin_polls(tokens: dict[int, str], seconds: float) -> dict[int, PollBegun]:
    """Take the poll locks of a batch of agents (account id -> lock token), in one round trip
    with each one's last action and the configuration epoch. Agents whose lock another poll
    holds are left out. A lock expires by itself after `seconds` (a killed worker cannot keep
    it; `renewed` keeps a slow poll's). One script, not two commands per agent (less packing
    and parsing of commands in the worker, fewer commands for Redis; docs/performance.md)."""
    keys = [key for a in tokens for key in (f"{PREFIX}lock:{a}", _agent(a))]
    *answers, config = _script(_BEGIN_POLLS)(
        keys=[*keys, CONFIG], args=[int(seconds * 1000), *tokens.values()]
    )
    if not config:  # Redis restarted or flushed: a new epoch, so nothing old is trusted
        config = bump_config()
    return {
        account_id: PollBegun(float(action_at or 0), str(config), int(version or 0))
        for account_id, locked, action_at, version in zip(
            tokens, answers[0::3], answers[1::3], answers[2::3], strict=True
        )
        if locked
    }


def bump_config() -> str:
    """A new configuration epoch: pollers reload every agent's account and tenant. Random, not
    a counter, so an epoch lost with Redis can never come back and match an old one."""
    epoch = uuid.uuid4().hex
    client().set(CONFIG, epoch)
    return epoch


def watch_configuration() -> None:
    """Saving or deleting an account or a tenant starts a new configuration epoch (once the
    transaction commits), so no poller keeps using what an admin has just changed."""
    from django.db.models.signals import post_delete, post_save

    from telephony.models import AgentAccount, Tenant

    for model in (AgentAccount, Tenant):
        for signal in (post_save, post_delete):
            signal.connect(
                _configuration_changed, sender=model, dispatch_uid=f"live-config-{model.__name__}"
            )


def _configuration_changed(**_: Any) -> None:
    from django.db import transaction

    def bump() -> None:
        # Without Redis the pollers still reload within tasks.KNOWN_SECONDS.
        with contextlib.suppress(redis.RedisError):
            bump_config()

    transaction.on_commit(bump)


@dataclass(frozen=True)
class QuietPoll:
    """A poll that found what the last one found."""

    account_id: int
    tenant_id: int
    state: AgentState
    took: float
    token: str


# A batch's quiet polls: what record_poll does for a success, the snapshot kept alive, the
# lock released if still hers. KEYS: per poll her hash, snapshot and lock, then DUE, then the
# tenants' error counters (deleted). ARGV: now, the TTL, the number of polls, then per poll
# {interval, lock token, next due or '' (not pushed back), account id}.
_END_QUIET = """
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local agent, snapshot, lock = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local a = 4 * i + 3
  redis.call('hset', agent, 'errors', 0, 'read_at', ARGV[1], 'interval', ARGV[a + 1])
  if ARGV[a + 3] ~= '' then
    redis.call('zadd', KEYS[3 * n + 1], 'XX', 'GT', ARGV[a + 3], ARGV[a + 4])
  end
  redis.call('expire', agent, ARGV[2])
  redis.call('expire', snapshot, ARGV[2])
  if redis.call('get', lock) == ARGV[a + 2] then redis.call('del', lock) end
end
for k = 3 * n + 2, #KEYS do redis.call('del', KEYS[k]) end
return n
"""


def end_quiet_polls(polls: list[QuietPoll]) -> None:
    """For a batch's quiet polls, in one round trip: the bookkeeping record_poll does for a
    success, each snapshot kept alive, each lock released. One script, not four commands per
    poll: 0.6 ms of the worker's CPU per batch of 25 became 0.15 ms (docs/performance.md)."""
    if not polls:
        return
    now = time.time()
    keys: list[str] = []
    args: list[Any] = [now, AGENT_TTL, len(polls)]
    for poll in polls:
        base = interval_for(poll.state, 0, 0)
        interval = max(base, min(MAX_BACKOFF, 2 * poll.took))
        due = _pushed_back(interval) if interval > base else ""  # slow: stretched
        keys += [
            _agent(poll.account_id),
            _snapshot(poll.account_id),
            f"{PREFIX}lock:{poll.account_id}",
        ]
        args += [interval, poll.token, due, poll.account_id]
    tenants = [f"{PREFIX}tenant:{t}:errors" for t in {poll.tenant_id for poll in polls}]
    _script(_END_QUIET)(keys=[*keys, DUE, *tenants], args=args)


def release(account_id: int, token: str) -> None:
    _script(_DELETE_IF_HELD)(keys=[f"{PREFIX}lock:{account_id}"], args=[token])


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class _Renewer:
    """One thread per process renews every poll lock this process holds, each `seconds / 2`.

    It replaced a thread started per poll: starting and joining a thread cost about 0.1 ms of
    CPU, a tenth of what a whole poll may cost (docs/performance.md)."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, str], float] = {}  # (account, token) -> lock seconds
        self._guard = threading.Lock()
        self._wake = threading.Condition(self._guard)
        self._thread: threading.Thread | None = None
        self._sleep: float | None = None  # how long the thread waits before its next renewal

    def add(self, account_id: int, token: str, seconds: float) -> None:
        with self._guard:
            self._held[(account_id, token)] = seconds
            # Woken only when it sleeps longer than this lock's half-life: waking it for every
            # poll cost a Redis round trip per poll.
            if self._sleep is not None and seconds / 2 < self._sleep:
                self._wake.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="lock-renewer")
                self._thread.start()

    def remove(self, account_id: int, token: str) -> None:
        with self._guard:
            self._held.pop((account_id, token), None)

    def _run(self) -> None:
        while True:
            with self._guard:
                self._sleep = min(self._held.values(), default=2.0) / 2
                self._wake.wait(self._sleep)
                held = list(self._held.items())
            if not held:
                continue
            with contextlib.suppress(redis.RedisError):
                pipe = client().pipeline(transaction=False)
                for (account_id, token), seconds in held:
                    _script(_RENEW)(
                        keys=[f"{PREFIX}lock:{account_id}"],
                        args=[token, int(seconds * 1000)],
                        client=pipe,
                    )
                pipe.execute()


_renewer = _Renewer()


@contextlib.contextmanager
def renewed(account_id: int, token: str, seconds: float) -> Iterator[None]:
    """Keep a held lock alive while the block runs (a slow MaxContact must not let a second
    poll of the same agent start); if this process dies, renewal stops and the lock expires
    within `seconds`."""
    _renewer.add(account_id, token, seconds)
    try:
        yield
    finally:
        _renewer.remove(account_id, token)


# --- Change detection and publishing ----------------------------------------------------------


def digest(desk: Desk) -> str:
    """A hash of what the agent sees, without the parts that change on every read."""
    state: list[Any] = [desk.state.value, type(desk.error).__name__ if desk.error else ""]
    for view in desk.calls:
        call = view.call
        state.append(
            [
                view.call_id,
                view.phase.value,
                view.recording.value,
                view.direction,
                view.state_label,
                view.status_label,
                view.recording_label,
                call.phone_number,
                call.customer_name,
                call.customer_name2,
                view.lead_id,
                view.started_at.isoformat() if view.started_at else "",
            ]
        )
    return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()


# One round trip before rendering (a click made four: docs/performance.md). After an action
# (ARGV[3] = 1): her next poll and her errors (see `publish`). Then, unless the digest is the
# one published and its snapshot is still there, the next version: versions must only grow,
# even when Redis restarts empty, so it is the current time in milliseconds, or one more than
# the last version if that is already later. Returns {changed, version}.
_BEGIN_PUBLISH = """
if ARGV[3] == '1' then
  redis.call('zadd', KEYS[3], 'XX', ARGV[5], ARGV[4])
  redis.call('hset', KEYS[1], 'errors', 0, 'action_at', ARGV[6])
end
local old = redis.call('hmget', KEYS[1], 'digest', 'version')
local last = tonumber(old[2] or '0')
if old[1] == ARGV[1] and redis.call('exists', KEYS[2]) == 1 then return {0, last} end
local now = tonumber(ARGV[2])
local next = last + 1
if now > last then next = now end
redis.call('hset', KEYS[1], 'version', next)
return {1, next}
"""


@dataclass(frozen=True)
class Published:
    version: int
    changed: bool


def publish(account_id: int, desk: Desk, render: Any, *, acted: bool = False) -> Published:
    """Publish the agent's workspace if what she sees changed; return its version.

    `render(version)` returns the workspace HTML; it is called only when something changed.

    `acted`: after an action, also forget her past errors and poll her one active interval
    from now. Not at once: the action's own response read her calls and publishes them here,
    so a poll at the next tick would only ask MaxContact the same question again (one
    getcalls per click saved; docs/performance.md, item 6).
    """
    r = client()
    key = _agent(account_id)
    new_digest = digest(desk)
    now = time.time()
    changed, version = _script(_BEGIN_PUBLISH)(
        keys=[key, _snapshot(account_id), DUE],
        args=[new_digest, int(now * 1000), int(acted), account_id, now + FAST - SLACK, now],
    )
    if not changed:
        return Published(int(version), changed=False)
    html = render(int(version))
    message = json.dumps({"version": int(version), "html": html})
    pipe = r.pipeline()
    pipe.hset(key, "digest", new_digest)
    pipe.expire(key, AGENT_TTL)
    pipe.set(_snapshot(account_id), message, ex=AGENT_TTL)
    pipe.publish(channel(account_id), message)
    pipe.execute()
    return Published(int(version), changed=True)


def snapshot(account_id: int) -> dict[str, Any] | None:
    raw = client().get(_snapshot(account_id))
    return json.loads(raw) if raw else None


def record_poll(account_id: int, tenant_id: int, desk: Desk, took: float = 0.0) -> float:
    """After a poll: errors, tenant errors and the next interval. Returns that interval.

    A poll that took longer than the interval (MaxContact slowing down) stretches it, so slow
    polls of one agent do not pile up.
    """
    r = client()
    key = _agent(account_id)
    tenant_key = f"{PREFIX}tenant:{tenant_id}:errors"
    if desk.error is None:
        pipe = r.pipeline()
        pipe.hset(key, mapping={"errors": 0, "read_at": time.time()})
        pipe.delete(tenant_key)
        pipe.execute()
        errors, tenant_errors = 0, 0
    else:
        errors = int(r.hincrby(key, "errors", 1))
        tenant_errors = 0
        if isinstance(desk.error, Unreachable):
            pipe = r.pipeline()
            pipe.incr(tenant_key)
            pipe.expire(tenant_key, 120)
            tenant_errors = int(pipe.execute()[0])
    interval = max(interval_for(desk.state, errors, tenant_errors), min(MAX_BACKOFF, 2 * took))
    pipe = r.pipeline()
    pipe.hset(key, "interval", interval)
    if interval > interval_for(desk.state, 0, 0):
        _push_back(pipe, account_id, interval)
    pipe.execute()
    return interval


def _push_back(pipe: Any, account_id: int, interval: float) -> None:
    """Her next poll no earlier than `interval` from now: errors and slowness only.

    Otherwise the schedule claim_due set stands (claim time + interval, read from her hash
    at the next claim): pushing every poll back from its *end* made a poll that waited
    0.4 s for its batch miss the next tick, so at 1,000 agents a quarter of the polls came
    2 s apart (45 instead of 60 polls a minute; docs/performance.md)."""
    pipe.zadd(DUE, {str(account_id): _pushed_back(interval)}, xx=True, gt=True)


def _pushed_back(interval: float) -> float:
    return time.time() + interval - SLACK * 5


def acted_since(account_id: int, moment: float) -> bool:
    """True when an action of this agent happened after `moment` (a poll then is stale)."""
    raw = client().hget(_agent(account_id), "action_at")
    return raw is not None and float(raw) > moment


def agent_info(account_id: int) -> dict[str, str]:
    return {str(k): str(v) for k, v in client().hgetall(_agent(account_id)).items()}
