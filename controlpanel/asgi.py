"""ASGI entry point (uvicorn serves the panel, so that the live stream can stream)."""

import asyncio
import contextlib
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponseBase

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")
django.setup(set_prefix=False)

from controlpanel.requestlog import STARTED  # noqa: E402 (after setup)


@cache
def _stream_path() -> str:
    """The stream's path below any script prefix, as `request.path_info` holds it (resolved
    once, at start-up, before any request has set a prefix)."""
    from django.urls import reverse

    return reverse("stream")


class RequestThreads:
    """Threads kept for requests, one request at a time each, the most recently used first.

    Django's ASGI handler starts a thread for every request (asgiref's ThreadSensitiveContext)
    and runs the request's synchronous work there: its signals, middleware, view, and closing
    the response. So each request also opened a database connection of its own, whatever
    CONN_MAX_AGE said (SQLite's setup statements included), and left it to the garbage
    collector. A kept thread keeps its connection, and Django's `close_old_connections`
    (request_started, request_finished) still runs in the thread that uses it. Click overhead
    p50 fell by about 2 ms (docs/performance.md). Requests are never queued: when every kept
    thread is busy, a new one is started, as before.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._idle: list[ThreadPoolExecutor] = []  # touched only on the event loop

    def take(self) -> ThreadPoolExecutor:
        if self._idle:
            return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        """Idle again once everything sent to it has run (a view whose client went away runs
        on after its request ended)."""
        loop = asyncio.get_running_loop()

        def idle(_: Future[None]) -> None:
            with contextlib.suppress(RuntimeError):  # the server stopped meanwhile
                loop.call_soon_threadsafe(self._keep_or_stop, executor)

        executor.submit(lambda: None).add_done_callback(idle)

    def _keep_or_stop(self, executor: ThreadPoolExecutor) -> None:
        if len(self._idle) < self.keep:
            self._idle.append(executor)
        else:  # more threads than usually needed: this one's connection goes with it
            from django.db import connections

            executor.submit(connections.close_all)
            executor.shutdown(wait=False)


class PanelASGIHandler(ASGIHandler):
    """Django's ASGI handler, with two changes.

    A live stream runs outside asgiref's per-request thread context. Inside one, the first
    thread-sensitive call (Django's own middleware makes several) starts a thread that lives
    as long as the request: for a stream, hours, so a thousand open panels held a thousand
    idle threads. A stream's few thread-sensitive calls go to asgiref's shared thread instead,
    and its Redis and database work to the loop's pool (stream.off_loop).

    Every other request runs on a kept thread (`RequestThreads`), and its whole middleware
    chain and view (all synchronous) in one hop to it, as under WSGI. Django's async chain
    hops between the event loop and a thread for each hook of each middleware (about twenty
    per request); on this VM each hop that finds the other side's CPU idle costs a wake-up,
    which made a click's overhead grow with MaxContact's latency (docs/performance.md).
    """

    def __init__(self) -> None:
        super().__init__()
        self._sync = BaseHandler()
        self._sync.load_middleware(is_async=False)
        self.threads = RequestThreads(settings.REQUEST_THREADS)
        _stream_path()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Where `Server-Timing: app` starts: the request as uvicorn hands it over, before any
        # hop to a thread (controlpanel.requestlog).
        scope[STARTED] = time.monotonic()
        path = str(scope.get("path", ""))[len(str(scope.get("root_path", ""))) :]
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # refused, as Django does
        elif path == _stream_path():
            await self.handle(scope, receive, send)
        else:
            executor = self.threads.take()
            try:
                async with ThreadSensitiveContext(executor=executor):
                    await self.handle(scope, receive, send)
            finally:
                self.threads.give_back(executor)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info == _stream_path():
            return await super().get_response_async(request)
        response: HttpResponseBase = await sync_to_async(
            self._sync.get_response, thread_sensitive=True
        )(request)
        return response


application = PanelASGIHandler()

# A key that opens none of the stored MaxContact secrets stops the server here, at start-up,
# rather than at an agent's first click (a missing or malformed key already stopped setup()).
from telephony.checks import refuse_to_start_with_wrong_keys  # noqa: E402

refuse_to_start_with_wrong_keys()
