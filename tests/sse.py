"""A small Server-Sent Events client for tests: reads a stream on a thread into a queue."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import requests


@dataclass
class Event:
    id: str = ""
    event: str = ""
    data: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.data)


class SSEClient:
    def __init__(
        self,
        url: str,
        cookies: dict[str, str],
        last_event_id: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        headers = {"Accept": "text/event-stream", **(headers or {})}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.session = requests.Session()
        self.response = self.session.get(
            url, cookies=cookies, headers=headers, stream=True, timeout=(5, 60)
        )
        self.response.raise_for_status()
        self.events: queue.Queue[Event] = queue.Queue()
        self.last_id = ""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        current = Event()
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line == "":
                    if current.data or current.event:
                        if not current.event and current.id:
                            self.last_id = current.id  # the newest workspace version seen
                        self.events.put(current)
                    current = Event()
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        current.data.append(value)
                    elif name == "id":
                        current.id = value
                    elif name == "event":
                        current.event = value
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by the test

    def next(self, timeout: float = 10.0, *, fragment: bool = True) -> Event:
        """The next event (only fragments, i.e. unnamed events, unless fragment=False)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no event arrived in time")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError("no event arrived in time") from None
            if not fragment or not event.event:
                return event

    def wait_for(self, text: str, timeout: float = 10.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if text in event.text:
                return event

    def nothing_for(self, seconds: float) -> bool:
        try:
            self.next(seconds)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        """Hang up now. Closing a response whose body another thread is reading waits for
        the next bytes (up to a heartbeat away): shut the socket down first."""
        import contextlib
        import socket

        connection = getattr(self.response.raw, "connection", None) or getattr(
            self.response.raw, "_connection", None
        )
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.response.close()
        self.session.close()
        self.thread.join(timeout=5)
