"""Real server processes for integration and browser tests: the panel under uvicorn."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from controlpanel import commands

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """The URL of the test database this process uses, for a server process to share."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        name = str(settings["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise RuntimeError("a server process cannot share an in-memory SQLite database")
        return f"sqlite:///{name}"
    user = quote(settings.get("USER") or "")
    password = quote(settings.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return (
        f"postgres://{auth}{settings.get('HOST') or '127.0.0.1'}:{settings.get('PORT') or 5432}"
        f"/{settings['NAME']}"
    )


class OutputWatch:
    """Reads a child process's output: copies it to our stderr (pytest shows it with a failing
    test) and keeps the lines that report a problem, so a test can say "no process logged an
    error while this ran"."""

    PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback \(most recent call last\)")

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.lines = 0
        self.problems: list[tuple[int, str]] = []
        self._stream = process.stdout
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in iter(self._stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            self.lines += 1
            if self.PROBLEM.search(line):
                self.problems.append((self.lines, line.rstrip()))
            sys.stderr.write(line)
        self._stream.close()

    def mark(self) -> int:
        return self.lines

    def problems_since(self, mark: int) -> list[str]:
        return [line for number, line in self.problems if number > mark]


_WATCHES: dict[int, OutputWatch] = {}


def watched(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A child process whose output is read by an `OutputWatch` (see `watch`)."""
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    _WATCHES[process.pid] = OutputWatch(process)
    return process


def watch(process: subprocess.Popen[bytes]) -> OutputWatch:
    return _WATCHES[process.pid]


class PanelServer:
    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url


def start_panel(extra_env: dict[str, str] | None = None) -> PanelServer:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(), **(extra_env or {})}
    process = watched([*commands.panel("127.0.0.1", port), "--log-level", "warning"], env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return PanelServer(process, f"http://127.0.0.1:{port}")
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("uvicorn did not start listening")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def _session_panel(django_db_setup: None, django_db_blocker: object) -> Iterator[PanelServer]:
    server = start_panel()
    try:
        yield server
    finally:
        stop(server.process)


def _forget_live_state() -> None:
    """Per test: no presence, schedule or snapshot from an earlier test (whose account ids a
    new test may reuse). Only `live:` keys: Celery's own keys in the broker stay."""
    from controlpanel import live

    r = live.client()
    keys = list(r.scan_iter(f"{live.PREFIX}*"))
    if keys:
        r.delete(*keys)


@pytest.fixture
def panel_server(_session_panel: PanelServer, transactional_db: None) -> PanelServer:
    """The panel served by uvicorn in its own process (started once), on the test database."""
    _forget_live_state()
    if _session_panel.process.poll() is not None:
        raise RuntimeError("the panel server died in an earlier test")
    return _session_panel


class RedisServer:
    """A private redis-server for the test run, on the port tests/settings.py chose."""

    def __init__(self, url: str) -> None:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


@pytest.fixture(scope="session", autouse=True)
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(os.environ["REDIS_URL"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def start_celery(
    kind: str, extra_env: dict[str, str] | None = None, workdir: Path | None = None
) -> subprocess.Popen[bytes]:
    """A real Celery worker or beat process on the test database and the private Redis."""
    env = {**os.environ, "DATABASE_URL": database_url(), **(extra_env or {})}
    if kind == "worker":
        # Batches in flight at once (each polls up to POLL_THREADS agents concurrently); the
        # benchmark may ask for processes (prefork) to use more than one core.
        concurrency = os.environ.get("TEST_WORKER_CONCURRENCY", "2")
        pool = os.environ.get("TEST_WORKER_POOL", "threads")
        argv = commands.celery_worker(
            "--concurrency", concurrency, "--pool", pool, "--without-heartbeat"
        )
    else:
        schedule = (workdir or Path(os.environ.get("TMPDIR", "/tmp"))) / f"beat-{os.getpid()}"
        argv = commands.celery_beat(str(schedule))
    return watched(argv, env)


def wait_until_polling(timeout: float = 90.0) -> None:
    """Until beat has ticked and a worker answers: a test that starts the stack must not count
    the seconds the processes take to start against the panel's freshness."""
    from controlpanel import live
    from controlpanel.celery import app

    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            last = live.last_dispatch()
            if last is not None and time.time() - last < 3:
                # A connection of its own: a pooled one may predate a Redis restart.
                with app.connection_for_write() as connection:
                    if app.control.ping(timeout=0.5, connection=connection):
                        return
        except Exception as error:  # Redis coming back after a test restarted it: again
            last_error = error
        time.sleep(0.2)
    raise RuntimeError(f"Celery beat and worker did not start polling ({last_error!r})")


class LiveStack:
    """The processes behind live updates: uvicorn, a Celery worker and Celery beat."""

    def __init__(
        self, panel: PanelServer, worker: subprocess.Popen[bytes], beat: subprocess.Popen[bytes]
    ) -> None:
        self.panel = panel
        self.url = panel.url
        self.worker = worker
        self.beat = beat


@pytest.fixture(scope="session")
def _session_live_stack(
    _session_panel: PanelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    stack = LiveStack(
        _session_panel,
        start_celery("worker"),
        start_celery("beat", workdir=tmp_path_factory.mktemp("beat")),
    )
    try:
        wait_until_polling()
        yield stack
    finally:
        for process in (stack.beat, stack.worker):
            stop(process)


@pytest.fixture
def live_stack(_session_live_stack: LiveStack, transactional_db: None) -> LiveStack:
    """uvicorn, a Celery worker and Celery beat (started once), with no live state left over."""
    _forget_live_state()
    if _session_live_stack.worker.poll() is not None:  # a test killed it: a new one
        _session_live_stack.worker = start_celery("worker")
        wait_until_polling()
    return _session_live_stack
