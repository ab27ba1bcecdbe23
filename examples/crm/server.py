"""An example CRM that frames the agent panel from another origin. Development only.

`make run` starts it at http://localhost:8099/ (the panel is at http://127.0.0.1:8000/: another
site, as a real CRM would be). It shows a contact list with click-to-dial links, a screen pop
on `call.offered` and a call log written on `call.disposed`. With `?mode=launch` it opens the
panel with a launch link that this server signs, the way a CRM's server would
(docs/embedding.md); it knows the secret only from DEMO_LAUNCH_SECRET.

Plain standard library, on purpose: it stands for somebody else's code, not ours.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import html
import os
import secrets
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

HERE = Path(__file__).resolve().parent
FILES = {
    "/crm.js": ("crm.js", "text/javascript; charset=utf-8"),
    "/crm.css": ("crm.css", "text/css; charset=utf-8"),
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src {panel}; object-src 'none'; base-uri 'none'"
)


def sign_launch_link(panel: str, tenant: str, agent: str, secret: str, lifetime: int = 60) -> str:
    """The recipe of docs/embedding.md: HMAC-SHA256 over five lines, hex, in the query."""
    expires = int(time.time()) + lifetime
    nonce = secrets.token_urlsafe(18)
    message = f"v1\n{tenant}\n{agent}\n{expires}\n{nonce}".encode()
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    query = urlencode({"agent": agent, "expires": expires, "nonce": nonce, "signature": signature})
    return f"{panel}/embed/{tenant}/launch?{query}"


class Handler(BaseHTTPRequestHandler):
    server: CRMServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/":
            self._page(
                query.get("mode", ["login"])[0],
                query.get("agent", [""])[0],
                query.get("layout", [""])[0] == "full",
            )
        elif url.path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        elif url.path in FILES:
            name, content_type = FILES[url.path]
            self._send(200, (HERE / name).read_bytes(), content_type)
        else:
            self._send(404, b"not found", "text/plain")

    def _page(self, mode: str, agent: str, full: bool) -> None:
        config = self.server.config
        if mode == "launch" and config["secret"]:
            src = sign_launch_link(
                config["panel"], config["tenant"], agent or config["agent"], config["secret"]
            )
            src += "&layout=full" if full else ""
        else:
            mode = "login"
            src = f"{config['panel']}/embed/{config['tenant']}/" + ("?layout=full" if full else "")
        page = (HERE / "index.html").read_text()
        page = page.replace("{{PANEL_ORIGIN}}", html.escape(config["panel"]))
        page = page.replace("{{PANEL_SRC}}", html.escape(src))
        page = page.replace("{{MODE}}", html.escape(mode))
        self._send(200, page.encode(), "text/html; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP.format(panel=self.server.config["panel"]))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        if self.server.config["verbose"]:
            super().log_message(format, *args)


class CRMServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], config: dict[str, Any]) -> None:
        super().__init__(address, Handler)
        self.config = config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--panel", default="http://127.0.0.1:8000", help="the panel's origin")
    parser.add_argument("--tenant", default="demo-simulator", help="the tenant's embed name")
    parser.add_argument("--agent", default="agent", help="who launch links open the panel for")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    config = {
        "panel": args.panel.rstrip("/"),
        "tenant": args.tenant,
        "agent": args.agent,
        "secret": os.environ.get("DEMO_LAUNCH_SECRET", ""),
        "verbose": args.verbose,
    }
    server = CRMServer((args.host, args.port), config)
    print(f"example CRM on http://{args.host}:{args.port}/ framing {config['panel']}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
