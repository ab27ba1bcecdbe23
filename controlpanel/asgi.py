"""ASGI entry point (uvicorn serves the panel, so that the live stream can stream)."""

import os
from functools import cache
from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")
django.setup(set_prefix=False)


@cache
def _stream_path() -> str:
    from django.urls import reverse

    return reverse("stream")


class PanelASGIHandler(ASGIHandler):
    """Django's ASGI handler, except that a live stream runs outside asgiref's per-request
    thread context.

    Inside one, the first thread-sensitive call (Django's own middleware makes several) starts
    a thread that lives as long as the request: for a stream, hours, so a thousand open panels
    held a thousand idle threads. A stream's few thread-sensitive calls go to asgiref's shared
    thread instead, and its Redis and database work to the loop's pool (stream.off_loop).
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") == _stream_path():
            await self.handle(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


application = PanelASGIHandler()

# A key that opens none of the stored MaxContact secrets stops the server here, at start-up,
# rather than at an agent's first click (a missing or malformed key already stopped setup()).
from telephony.checks import refuse_to_start_with_wrong_keys  # noqa: E402

refuse_to_start_with_wrong_keys()
