"""Screenshots of the agent panel for docs/screenshots: `.venv/bin/python scripts/screenshots.py`.

Starts its own MaxContact simulator and panel (uvicorn) on free loopback ports, with a throwaway
SQLite database and fresh keys, logs in as the demo agent and walks through an agent's day by
clicking the panel: ready, a call, a PCI pause, wrap-up and step 2 of a transfer. Each state is
saved at 1280x800 ("wide") and 360x740 ("narrow"), in the light and the dark theme, as
docs/screenshots/<state>-<wide|narrow>-<light|dark>.png (full page).

Fails (exit status 1) when the page logs a console error, throws, reports a CSP violation or
gets a 4xx/5xx answer; everything it started is stopped either way. Run manually, not by tests.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from controlpanel import commands
from tests import chromium
from tests.chromium import CHROMIUM

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
SIZES = {"wide": (1280, 800), "narrow": (360, 740)}
THEMES = ("light", "dark")
USER_ID = 101  # the simulator's first seeded agent, the one demo_setup links to `agent`
CUSTOMER_LEAD = 4000456  # Eli Evans / Evans Plumbing Ltd: a lead with two customer names
TRANSFER_TO = "02079460017"
STEP_TIMEOUT_MS = 15_000
CALL_AGE_MS = 3_000

# Elements that stick out of the viewport on the right (cut off, or a sideways scroll).
STICKING_OUT = """
() => [...document.querySelectorAll("body *")]
  .filter((el) => {
    const box = el.getBoundingClientRect();
    return box.width > 1 && box.right > document.documentElement.clientWidth + 0.5;
  })
  .map((el) => el.tagName.toLowerCase() + (el.className ? "." + el.className : ""))
"""

# Collects what the page reports about Content-Security-Policy, before any of its own scripts.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile || "?"}:${event.lineNumber}:${event.columnNumber}`;
  const what = event.target && event.target.outerHTML ? event.target.outerHTML.slice(0, 160) : "";
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} at ${where} ${what}`
  );
});
"""


def log(message: str) -> None:
    print(f"[screenshots] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start listening on port {port}")


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Simulator:
    """The simulator's control API (docs/simulator.md, "Control endpoints")."""

    def __init__(self, base_url: str) -> None:
        match = re.match(r"(https?://[^/]+)", base_url)
        if not match:
            raise SystemExit(f"cannot read the simulator's address from {base_url!r}")
        self.base_url = base_url
        self.origin = match.group(1)

    def post(self, endpoint: str, payload: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 (a loopback http URL we built)
            f"{self.origin}/_sim/{endpoint}",
            data=json.dumps(payload or {}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read() or b"null")


@contextmanager
def servers(password: str) -> Iterator[tuple[str, Simulator]]:
    """A simulator and a panel on free ports, set up like `make run`; stopped on exit."""
    children: list[subprocess.Popen[Any]] = []
    with tempfile.TemporaryDirectory(prefix="panel-screenshots-") as tmp:
        from cryptography.fernet import Fernet

        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'panel.sqlite3'}",
            "DEBUG": "false",
            "SECURE_COOKIES": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "MAXCONTACT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ENV_FILE": "/dev/null",
            "DEMO_PASSWORD": password,
            "CACHE_KEY_PREFIX": f"panel-screenshots-{os.getpid()}",
            "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
        }
        try:
            simulator = subprocess.Popen(  # noqa: S603 (our own fixed command)
                [PYTHON, "-m", "telephony.simulator", "--port", "0", "--quiet"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            children.append(simulator)
            assert simulator.stdout is not None
            first_line = simulator.stdout.readline()
            found = re.search(r"https?://\S+", first_line)
            if not found:
                raise SystemExit(f"the simulator did not say where it listens: {first_line!r}")
            env["SIMULATOR_URL"] = found.group(0)
            sim = Simulator(found.group(0))
            log(f"simulator at {sim.base_url}")

            manage = [PYTHON, "manage.py"]
            for command in (
                ["migrate", "--no-input", "-v", "0"],
                ["collectstatic", "--no-input", "-v", "0"],
                ["demo_setup"],
            ):
                subprocess.run(  # noqa: S603 (our own fixed commands)
                    [*manage, *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
                )

            port = free_port()
            panel = subprocess.Popen(  # noqa: S603 (our own fixed command)
                [*commands.panel("127.0.0.1", port, python=PYTHON), "--log-level", "warning"],
                cwd=ROOT,
                env=env,
            )
            children.append(panel)
            wait_for_port(port, panel, "the panel")
            log(f"panel at http://127.0.0.1:{port}/")
            yield f"http://127.0.0.1:{port}", sim
        finally:
            for child in reversed(children):
                stop(child)


class Watch:
    """Everything wrong the page reports: console errors, exceptions, CSP, failed answers."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("response", self._response)
        page.on("requestfailed", lambda req: self.problems.append(f"request failed: {req.url}"))

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning") or "Content Security Policy" in message.text:
            self.problems.append(f"console {message.type}: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status} for {response.url}")

    def check(self, where: str) -> None:
        violations = self.page.evaluate("window.__cspViolations || []")
        self.problems.extend(f"CSP violation: {item}" for item in violations)
        if self.problems:
            raise SystemExit(f"problems on the page ({where}):\n  " + "\n  ".join(self.problems))


def settled(page: Page) -> None:
    """Wait until no htmx request is in flight and fonts and layout are stable."""
    # (wait_for_function would evaluate a string in the page, which the strict CSP refuses.)
    expect(page.locator(".htmx-request")).to_have_count(0, timeout=STEP_TIMEOUT_MS)
    page.wait_for_timeout(150)


def click(page: Page, selector: str, expect_selector: str) -> None:
    page.locator(selector).first.click()
    expect(page.locator(expect_selector).first).to_be_visible(timeout=STEP_TIMEOUT_MS)
    settled(page)
    page.mouse.move(0, 0)  # no hover look on whatever the click left under the pointer


def journey(page: Page, panel_url: str, sim: Simulator, password: str) -> Iterator[str]:
    """Walks the agent's day; yields each state's name when the page shows it."""
    page.goto(f"{panel_url}/login/")
    page.fill("#id_username", "agent")
    page.fill("#id_password", password)
    page.locator("main.login button[type=submit]").click()
    expect(page.locator("#workspace")).to_be_visible(timeout=STEP_TIMEOUT_MS)

    expect(page.locator("#live-status")).to_have_text("Live", timeout=STEP_TIMEOUT_MS)
    if page.locator("[data-shortcut=r]").count():  # not shown when she is ready already
        click(page, "[data-shortcut=r]", ".notice-success")
    expect(page.locator(".state-ready")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    yield "ready"

    sim.post(
        "offer", {"user_id": USER_ID, "lead_id": CUSTOMER_LEAD, "ring_seconds": 0, "force": True}
    )
    page.wait_for_timeout(CALL_AGE_MS)  # a call timer that has started running
    click(page, ".status-side button[hx-get]", ".call .badge-talking")
    yield "call"

    click(page, "[data-shortcut=p]", ".call.is-pci .recording-stopped")
    yield "pci"

    click(page, "[data-shortcut=p]", ".call:not(.is-pci) .recording-recording")
    click(page, "[data-shortcut=h]", ".banner-wrap")
    page.keyboard.press("w")  # the shortcut to the result field
    expect(page.locator("[data-shortcut-focus=w]").first).to_be_focused()
    yield "wrapup"

    page.locator("[data-shortcut-focus=w]").first.select_option("SALE")
    click(page, "form.wrapup button[type=submit]", ".calls .empty")
    sim.post(
        "offer", {"user_id": USER_ID, "lead_id": CUSTOMER_LEAD, "ring_seconds": 0, "force": True}
    )
    page.wait_for_timeout(CALL_AGE_MS)
    click(page, ".status-side button[hx-get]", ".call .badge-talking")
    card = page.locator(".call").first
    card.locator("details.more summary", has_text="Transfer").click()
    card.locator("input[name=phone]").fill(TRANSFER_TO)
    click(page, ".call form[hx-post*=transfer] button[type=submit]", ".transfer")
    yield "transfer"


def run(browser: Browser, panel_url: str, sim: Simulator, password: str) -> list[Path]:
    saved: list[Path] = []
    for size, (width, height) in SIZES.items():
        for theme in THEMES:
            sim.post("reset")
            context = browser.new_context(
                viewport={"width": width, "height": height},
                color_scheme=theme,  # type: ignore[arg-type]
                reduced_motion="reduce",
            )
            context.add_init_script(CSP_WATCH)
            page = context.new_page()
            watch = Watch(page)
            try:
                for state in journey(page, panel_url, sim, password):
                    watch.check(f"{state}, {size}, {theme}")
                    path = OUT / f"{state}-{size}-{theme}.png"
                    # caret="initial": hiding the caret leaves style="" on every input, which
                    # htmx's settle step then copies with setAttribute, a CSP violation.
                    page.screenshot(path=str(path), full_page=True, caret="initial")
                    sticking_out = page.evaluate(STICKING_OUT)
                    if sticking_out:
                        raise SystemExit(f"{path.name}: wider than the page: {sticking_out}")
                    saved.append(path)
                    log(f"saved {path.relative_to(ROOT)}")
            finally:
                context.close()
    return saved


def main() -> int:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (see scripts/ensure-chromium.sh)")
    OUT.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    with servers(password) as (panel_url, sim), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium.ARGS)
        try:
            saved = run(browser, panel_url, sim, password)
        finally:
            browser.close()
    log(f"{len(saved)} screenshots in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
