"""ASGI entry point (uvicorn serves the panel, so that the live stream can stream)."""

import os
import time
from functools import cache
from typing import Any

import django
from asgiref.sync import sync_to_async
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


class PanelASGIHandler(ASGIHandler):
    """Django's ASGI handler, with two changes.

    A live stream runs outside asgiref's per-request thread context. Inside one, the first
    thread-sensitive call (Django's own middleware makes several) starts a thread that lives
    as long as the request: for a stream, hours, so a thousand open panels held a thousand
    idle threads. A stream's few thread-sensitive calls go to asgiref's shared thread instead,
    and its Redis and database work to the loop's pool (stream.off_loop).

    Every other request (the views are synchronous) runs its whole middleware chain and view
    in one hop to a thread, as under WSGI. Django's async chain hops between the event loop
    and a thread for each hook of each middleware (about twenty per request); on this VM each
    hop that finds the other side's CPU idle costs a wake-up, which made a click's overhead
    grow with MaxContact's latency (docs/performance.md).
    """

    def __init__(self) -> None:
        super().__init__()
        self._sync = BaseHandler()
        self._sync.load_middleware(is_async=False)
        _stream_path()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Where `Server-Timing: app` starts: the request as uvicorn hands it over, before any
        # hop to a thread (controlpanel.requestlog).
        scope[STARTED] = time.monotonic()
        path = str(scope.get("path", ""))[len(str(scope.get("root_path", ""))) :]
        if scope["type"] == "http" and path == _stream_path():
            await self.handle(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

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
