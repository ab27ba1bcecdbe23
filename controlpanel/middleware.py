"""The one shape the panel's own middleware takes: a hook before the view and one after it,
run in place in sync and async stacks alike (no thread hop for the SSE stream)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase


class Middleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def before(self, request: HttpRequest) -> Any:
        """Runs before the view; what it returns is handed to `after` and `finish`."""
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase, state: Any) -> None:
        """Runs with the response, before it goes out."""

    def finish(self, state: Any) -> None:
        """Runs last, whatever happened."""

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        state = self.before(request)
        try:
            response = self.get_response(request)
            self.after(request, response, state)
            return response
        finally:
            self.finish(state)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        state = self.before(request)
        try:
            response = await self.get_response(request)
            self.after(request, response, state)
            return response
        finally:
            self.finish(state)
