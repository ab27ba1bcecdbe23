"""`make run`: set up and start the panel against the MaxContact simulator, on loopback.

Steps: write `.env` with fresh keys on first run; find Redis at REDIS_URL or start a private
redis-server there; migrate; collect static files; create the demo users; start the simulator
(demo mode), the panel (uvicorn), a Celery worker and Celery beat. Ctrl-C stops everything
this script started.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controlpanel import commands  # noqa: E402
from controlpanel.envfile import load_env_file  # noqa: E402

PYTHON = sys.executable
ENV_FILE = ROOT / ".env"
DEMO_TENANT_SLUG = "demo-simulator"  # the slug demo_setup's tenant gets from its name


def log(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def ensure_env_file() -> None:
    """First run: a private .env with fresh keys (never committed; see .gitignore)."""
    if ENV_FILE.exists():
        return
    from cryptography.fernet import Fernet

    ENV_FILE.write_text(
        "# Written by `make run` on first start. See .env.example for every setting.\n"
        "DEBUG=false\n"
        "SECURE_COOKIES=false\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"MAXCONTACT_ENCRYPTION_KEYS={Fernet.generate_key().decode()}\n"
        f"DEMO_PASSWORD={secrets.token_urlsafe(9)}\n"
    )
    ENV_FILE.chmod(0o600)
    log(f"wrote {ENV_FILE.name} with new keys")


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, what: str, process: subprocess.Popen[bytes], timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"[make run] {what} exited with status {process.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"[make run] {what} did not start listening on {host}:{port}")


def free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def main() -> None:
    os.chdir(ROOT)
    ensure_env_file()
    load_env_file(ENV_FILE)
    panel_host = os.environ.get("PANEL_HOST", "127.0.0.1")
    panel_port = int(os.environ.get("PANEL_PORT", "8000"))
    sim_host = os.environ.get("SIMULATOR_HOST", "127.0.0.1")
    sim_port = int(os.environ.get("SIMULATOR_PORT", "8081"))
    os.environ.setdefault("SIMULATOR_URL", f"http://{sim_host}:{sim_port}/webservices")
    redis_url = os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    # The example CRM runs on another site than the panel, as a real CRM would.
    crm_host = os.environ.get("CRM_HOST", "127.0.0.1" if panel_host == "localhost" else "localhost")
    crm_port = int(os.environ.get("CRM_PORT", "8099"))
    wildcard = panel_host in ("0.0.0.0", "::")  # noqa: S104 (recognising it, not binding)
    panel_origin = f"http://{'127.0.0.1' if wildcard else panel_host}:{panel_port}"
    os.environ.setdefault("DEMO_CRM_ORIGIN", f"http://{crm_host}:{crm_port}")
    # The secret the example CRM signs launch links with: stable across runs, never printed.
    if not os.environ.get("DEMO_LAUNCH_SECRET"):
        os.environ["DEMO_LAUNCH_SECRET"] = hmac.new(
            os.environ["SECRET_KEY"].encode(), b"example CRM launch links", hashlib.sha256
        ).hexdigest()

    children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def stop_all(*_: object) -> None:
        for name, process in reversed(children):
            if process.poll() is None:
                log(f"stopping {name}")
                process.terminate()
        for _name, process in reversed(children):
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()

    def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, cwd=ROOT)  # noqa: S603 (our own fixed commands)
        children.append((name, process))
        return process

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for host, port, variable in (
            (panel_host, panel_port, "PANEL_PORT"),
            (sim_host, sim_port, "SIMULATOR_PORT"),
            (crm_host, crm_port, "CRM_PORT"),
        ):
            if not free(host, port):
                raise SystemExit(f"[make run] {host}:{port} is taken; set {variable}")
        redis = urlparse(redis_url)
        redis_host, redis_port = redis.hostname or "127.0.0.1", redis.port or 6379
        if answers(redis_host, redis_port):
            log(f"using Redis at {redis_host}:{redis_port}")
        elif shutil.which("redis-server"):
            log(f"nothing answers at {redis_host}:{redis_port}; starting a private redis-server")
            process = start(
                "redis-server",
                [
                    "redis-server",
                    "--bind",
                    redis_host,
                    "--port",
                    str(redis_port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--loglevel",
                    "warning",
                ],
            )
            wait_for_port(redis_host, redis_port, "redis-server", process)
        else:
            raise SystemExit(
                f"[make run] no Redis at {redis_url} and no redis-server binary: "
                "install Redis or set REDIS_URL"
            )

        manage = [PYTHON, "manage.py"]
        subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], check=True)  # noqa: S603
        subprocess.run([*manage, "collectstatic", "--no-input", "-v", "0"], check=True)  # noqa: S603
        subprocess.run([*manage, "demo_setup"], check=True)  # noqa: S603

        simulator = start(
            "simulator",
            [
                PYTHON,
                "-m",
                "telephony.simulator",
                "--demo",
                "--host",
                sim_host,
                "--port",
                str(sim_port),
            ],
        )
        wait_for_port(sim_host, sim_port, "simulator", simulator)
        panel = start("panel", commands.panel(panel_host, panel_port))
        wait_for_port(panel_host, panel_port, "panel", panel)
        crm = start(
            "example CRM",
            [
                PYTHON,
                "examples/crm/server.py",
                "--host",
                crm_host,
                "--port",
                str(crm_port),
                "--panel",
                panel_origin,
                "--tenant",
                DEMO_TENANT_SLUG,
            ],
        )
        wait_for_port(crm_host, crm_port, "example CRM", crm)
        (ROOT / ".run").mkdir(exist_ok=True)
        start("celery worker", commands.celery_worker("--concurrency", "2"))
        start("celery beat", commands.celery_beat(str(ROOT / ".run" / "celerybeat-schedule")))
        log(f"panel:     http://{panel_host}:{panel_port}/  (admin: /admin/)")
        log(f"simulator: {os.environ['SIMULATOR_URL']}")
        log(f"CRM:       http://{crm_host}:{crm_port}/  (the panel embedded; dev only)")
        log("try:       .venv/bin/python manage.py telephony agent getcalls")
        log("Ctrl-C stops everything")
        while all(process.poll() is None for _, process in children):
            time.sleep(0.5)
        for name, process in children:
            if process.poll() is not None:
                log(f"{name} exited with status {process.returncode}; stopping the rest")
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


if __name__ == "__main__":
    main()
