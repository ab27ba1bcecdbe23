"""One log line per request, and a request id on every log line it causes.

The id comes from the proxy's `X-Request-ID` when it looks like one, or is made here. It is
sent back in `X-Request-ID`, stamped on every log record written while the request runs (the
vendor calls included, see `RequestIdFilter`), and written on the audit entry of the action,
so a click, its MaxContact call and its audit entry can be found together.
Paths are logged without their query string (a search may hold a customer's name).
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from telephony import timing

from .middleware import Middleware

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
STARTED = "panel.started"  # ASGI scope key: time.monotonic() when the request came in
_VALID = re.compile(r"[A-Za-z0-9._-]{8,64}")
logger = logging.getLogger("controlpanel.request")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def stamp_every_record() -> None:
    """Give every log record the current request id as it is made (for any handler)."""
    make = logging.getLogRecordFactory()
    if getattr(make, "stamps_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        return record

    factory.stamps_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def new_id(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:16]


class RequestLogMiddleware(Middleware):
    """Also says where a response's time went, in `Server-Timing`: `app` (the whole request
    as this middleware saw it) and `maxcontact` (waiting on MaxContact, with the number of
    requests). Browsers show it in their network panel; `make bench` reads it."""

    def before(self, request: HttpRequest) -> tuple[Any, ...]:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _VALID.fullmatch(given) else new_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        tally, tally_token = timing.measuring()
        # From the moment the ASGI handler got the request, when it says (asgi.py).
        scope = getattr(request, "scope", None) or {}
        started = scope.get(STARTED, time.monotonic())
        return REQUEST_ID.set(request_id), started, tally, tally_token

    def after(
        self, request: HttpRequest, response: HttpResponseBase, state: tuple[Any, ...]
    ) -> None:
        took = time.monotonic() - state[1]
        tally: timing.Tally = state[2]
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        response["Server-Timing"] = (
            f"app;dur={took * 1000:.2f}, "
            f'maxcontact;dur={tally.seconds * 1000:.2f};desc="{tally.requests} requests"'
        )
        user = getattr(request, "user", None)
        # Only the user's id: evaluating a lazy user here would cost a query per request. A
        # stream keeps her id alone (controlpanel.stream).
        user_id = getattr(user, "_wrapped", None)
        who = getattr(user_id, "pk", None) if user_id is not None else None
        who = getattr(request, "logged_user_id", who)
        logger.info(
            "%s %s %s %dms user=%s maxcontact=%d/%dms",
            request.method,
            request.path,
            response.status_code,
            took * 1000,
            who if who is not None else "-",
            tally.requests,
            tally.seconds * 1000,
        )

    def finish(self, state: tuple[Any, ...]) -> None:
        timing.stop(state[3])
        REQUEST_ID.reset(state[0])
