"""Many panels at once, on one asyncio loop in a thread: SSE streams and browser-style polls.

A thread per stream (tests/sse.py) does not scale to a thousand. Streams speak HTTP/1.0, so
the body is the raw event stream (no chunked framing); polls use HTTP/1.1 keep-alive, as a
browser does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse


@dataclass
class Expectation:
    marker: str
    since: float
    arrived: float | None = None


@dataclass
class Stream:
    agent: int
    cookie: str
    events: int = 0
    last_id: str = ""
    connected: bool = False
    expectations: list[Expectation] = field(default_factory=list)

    def on_event(self, text: str, event_id: str, now: float) -> None:
        self.events += 1
        if event_id:
            self.last_id = event_id
        for wanted in self.expectations:
            if wanted.arrived is None and wanted.marker in text and now >= wanted.since:
                wanted.arrived = now


class Crowd:
    """Runs an event loop in a background thread; methods are called from the test thread."""

    def __init__(self, base_url: str) -> None:
        parsed = urlparse(base_url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.streams: dict[int, Stream] = {}
        self.tasks: list[asyncio.Future] = []
        self.polls = 0
        self.poll_errors = 0
        self._polling: asyncio.Event | None = None

    # --- streams ---------------------------------------------------------------------------

    def open_streams(self, cookies: dict[int, str], timeout: float = 120) -> None:
        """One SSE stream per agent (account id -> session cookie); returns once each has had
        its first event."""
        for agent, cookie in cookies.items():
            stream = self.streams[agent] = Stream(agent, cookie)
            self.tasks.append(asyncio.run_coroutine_threadsafe(self._stream(stream), self.loop))
        deadline = time.monotonic() + timeout
        while any(s.events == 0 for s in self.streams.values()):
            if time.monotonic() > deadline:
                missing = sum(1 for s in self.streams.values() if s.events == 0)
                raise TimeoutError(f"{missing} streams had no first event")
            time.sleep(0.1)

    async def _stream(self, stream: Stream) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=2**22)
        writer.write(
            (
                f"GET /panel/stream HTTP/1.0\r\nHost: {self.host}:{self.port}\r\n"
                f"Cookie: sessionid={stream.cookie}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream for {stream.agent}: {status!r}")
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        stream.connected = True
        data: list[str] = []
        event_id = ""
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text == "":
                    if data:
                        stream.on_event("\n".join(data), event_id, time.monotonic())
                    data, event_id = [], ""
                elif text.startswith("data:"):
                    data.append(text[5:].lstrip(" "))
                elif text.startswith("id:"):
                    event_id = text[3:].strip()
        finally:
            stream.connected = False
            writer.close()

    def expect(self, agent: int, marker: str, since: float) -> Expectation:
        wanted = Expectation(marker, since)
        self.loop.call_soon_threadsafe(self.streams[agent].expectations.append, wanted)
        return wanted

    def close_streams(self) -> None:
        """Close every stream (and stop every poll), and wait until their sockets are shut."""
        for task in self.tasks:
            task.cancel()
        concurrent.futures.wait(self.tasks, timeout=30)
        self.tasks.clear()
        self.streams.clear()

    # --- browser-style polling -----------------------------------------------------------

    def start_polling(self, cookies: dict[int, str], csrf: str, every: float) -> None:
        """Each agent's page GETs /panel/workspace every `every` seconds (htmx's fallback)."""
        self._polling = asyncio.Event()
        stop = self._polling
        for index, cookie in enumerate(cookies.values()):
            phase = every * index / max(1, len(cookies))  # spread, as real pages would be
            self.tasks.append(
                asyncio.run_coroutine_threadsafe(
                    self._poll(cookie, csrf, every, phase, stop), self.loop
                )
            )

    def stop_polling(self) -> None:
        if self._polling is not None:
            self.loop.call_soon_threadsafe(self._polling.set)

    async def _poll(
        self, cookie: str, csrf: str, every: float, phase: float, stop: asyncio.Event
    ) -> None:
        await asyncio.sleep(phase)
        reader, writer = await asyncio.open_connection(self.host, self.port)
        request = (
            f"GET /panel/workspace HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Cookie: sessionid={cookie}; csrftoken={csrf}\r\nHX-Request: true\r\n"
            "Accept: text/html\r\n\r\n"
        ).encode()
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                writer.write(request)
                await writer.drain()
                ok = await _read_response(reader)
                self.polls += 1
                if not ok:
                    self.poll_errors += 1
                next_at += every
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            writer.close()

    def stop(self) -> None:
        self.close_streams()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def _read_response(reader: asyncio.StreamReader) -> bool:
    """Read one HTTP/1.1 response (Content-Length or chunked); True when it was a 200."""
    status = await reader.readline()
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return b" 200 " in status
