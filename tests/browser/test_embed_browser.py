"""The panel inside a CRM, in a real browser: the example CRM on one site (localhost) frames the
panel on another (127.0.0.1), as Salesforce or HubSpot would. Debian's Chromium blocks
third-party cookies, so these tests see what agents' browsers do."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests import chromium
from tests.browser.conftest import screenshot
from tests.servers import ROOT, free_port, stop

pytestmark = pytest.mark.django_db(transaction=True)
# What arrives by push: generous, since the machine running the tests is shared. Freshness
# itself is measured by `make bench`, not asserted here.
LIVE_TIMEOUT = 20_000

SECRET = "example-crm-launch-secret-for-tests-0123456789"


class CRM:
    def __init__(self, port: int) -> None:
        self.url = f"http://localhost:{port}"
        self.other_origin_url = f"http://127.0.0.1:{port}"  # same server, an origin not allowed


def start_crm(panel_url: str, tenant_slug: str) -> tuple[subprocess.Popen[bytes], CRM]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "examples/crm/server.py",
            "--host",
            "localhost",
            "--port",
            str(port),
            "--panel",
            panel_url,
            "--tenant",
            tenant_slug,
            "--agent",
            "alice",
        ],
        cwd=ROOT,
        env={**os.environ, "DEMO_LAUNCH_SECRET": SECRET},
        stdout=subprocess.DEVNULL,
    )
    crm = CRM(port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("localhost", port), timeout=0.2).close()
            return process, crm
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the example CRM did not start")


def _crm_for(server, sim_tenant):
    process, crm = start_crm(server.url, sim_tenant.slug)
    sim_tenant.allowed_origins = [crm.url]
    sim_tenant.set_launch_secret(SECRET)
    sim_tenant.save()
    return process, crm


@pytest.fixture
def crm(panel_server, sim_tenant):
    process, crm = _crm_for(panel_server, sim_tenant)
    yield crm
    stop(process)


@pytest.fixture
def live_crm(live_stack, sim_tenant):
    process, crm = _crm_for(live_stack, sim_tenant)
    yield crm
    stop(process)


def panel(page):
    return page.frame_locator("#panel")


def log_in_inside(page, crm):
    page.goto(f"{crm.url}/")
    frame = panel(page)
    frame.locator("#id_username").fill("alice")
    frame.locator("#id_password").fill("panel-pw-123")
    frame.get_by_role("button", name="Log in").click()
    expect(frame.locator(".status")).to_be_visible()
    expect(frame.locator("#live-status")).to_have_text("Live")
    # This tab owns the CRM channel (a stream of an earlier test, for a reused account id,
    # may hold the lease for a few seconds more).
    expect(frame.locator("html")).to_have_attribute("data-crm-owner", "true", timeout=10_000)
    expect(page.locator("#channel")).to_contain_text("connected")


def events(page, kind=None):
    types = page.locator("#events li").evaluate_all("items => items.map(i => i.dataset.type)")
    return [t for t in reversed(types) if kind is None or t == kind]


def sent(simulator, method):
    return [r for r in simulator.requests() if f"/telephony/{method}/" in r["path"].lower()]


def test_logging_in_inside_the_crm_lasts_across_crm_reloads(crm, alice, page):
    log_in_inside(page, crm)
    screenshot(page, "embedded-in-crm")
    for _ in range(2):
        page.reload()
        expect(panel(page).locator(".status")).to_be_visible()
        expect(panel(page).locator("#id_username")).to_have_count(0)  # no login loop
    frame = page.frames[1]
    assert frame.url.endswith(f"/embed/{alice.tenant.slug}/")
    assert "Partitioned" not in frame.evaluate("document.cookie")  # attributes are not visible...
    assert "csrftoken=" in frame.evaluate("document.cookie")  # ...but the cookie was kept


def test_click_to_dial_goes_through_the_panel_and_dials_once(crm, simulator, alice, page):
    log_in_inside(page, crm)
    page.click("#go-ready")
    expect(panel(page).locator(".state-pill")).to_have_text(re.compile("Ready"))

    page.locator("tr[data-phone='07700900789'] button.dial").dblclick()  # an eager agent
    call = panel(page).locator("#call-1000")
    expect(call).to_contain_text("07700 900789")
    expect(call).to_contain_text("Connected")
    dials = sent(simulator, "dial")
    assert len(dials) == 1
    assert dials[0]["params"] == {"leadid": ["2147483651"]}  # the lead the CRM named
    expect(page.locator("#events")).to_contain_text("call.started")

    # A number the panel cannot dial is refused by the same validation as the form.
    page.evaluate(
        "document.getElementById('panel').contentWindow.postMessage("
        "{type: 'dial', number: '12', requestId: 'bad'}, document.body.dataset.panelOrigin)"
    )
    expect(page.locator("#events .refused").first).to_be_visible()
    assert len(sent(simulator, "dial")) == 1


def test_an_offered_call_pops_the_crm_screen_and_its_disposition_is_logged(
    live_crm, simulator, alice, page
):
    log_in_inside(page, live_crm)
    page.click("#go-ready")
    expect(panel(page).locator(".state-pill")).to_have_text(re.compile("Ready"))

    simulator.offer(101, phone="07700900456")
    expect(page.locator("#screen-pop")).to_contain_text("Eli Evans", timeout=LIVE_TIMEOUT)
    expect(page.locator("#screen-pop")).to_contain_text("07700900456")
    screenshot(page, "crm-screen-pop")

    page.click("#hang-up")  # the CRM's own button, through the postMessage API
    call = panel(page).locator("#call-1000")
    expect(panel(page).locator(".banner-wrap")).to_contain_text("One call needs a result.")
    call.get_by_label(re.compile("^Result")).select_option("SALE")
    call.get_by_label("Notes (optional)").fill("Paid by card")
    call.get_by_role("button", name="Finish call").click()
    expect(page.locator("#call-log")).to_contain_text("Eli Evans")
    expect(page.locator("#call-log")).to_contain_text("SALE")
    expect(page.locator("#call-log")).to_contain_text("Paid by card")
    screenshot(page, "crm-call-logged")

    for kind in ("call.offered", "call.started", "call.ended", "call.disposed"):
        assert len(events(page, kind)) == 1, (kind, events(page))
    assert len(sent(simulator, "hangup")) == 1

    # A reload of the CRM replays nothing: the new panel starts from what is.
    page.reload()
    expect(page.locator("#channel")).to_contain_text("connected")
    page.wait_for_timeout(1500)
    assert [t for t in events(page) if t not in ("ready", "result")] == []


def test_with_two_crm_tabs_each_change_is_told_once(live_crm, simulator, alice, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    first, second = context.new_page(), context.new_page()
    log_in_inside(first, live_crm)
    second.goto(f"{live_crm.url}/")
    expect(panel(second).locator("#live-status")).to_have_text("Live")
    first.click("#go-ready")
    expect(panel(second).locator(".state-pill")).to_have_text(re.compile("Ready"))

    simulator.offer(101, phone="07700900123")
    for tab in (first, second):
        expect(panel(tab).locator("#call-1000")).to_be_visible(timeout=LIVE_TIMEOUT)
    time.sleep(1)
    offered = len(events(first, "call.offered")) + len(events(second, "call.offered"))
    owners = [
        tab.frames[1].evaluate("document.documentElement.dataset.crmOwner")
        for tab in (first, second)
    ]
    context.close()
    assert offered == 1
    assert sorted(owners) == ["false", "true"]


def test_messages_from_a_wrong_origin_or_a_non_parent_window_do_nothing(
    crm, simulator, alice, page
):
    log_in_inside(page, crm)
    message = "{type: 'dial', number: '07700900123'}"
    # A sibling frame on the CRM's own (allowed) origin: not the panel's parent.
    page.evaluate(
        "() => { const f = document.createElement('iframe'); f.name = 'sibling'; "
        "document.body.append(f); }"
    )
    # A sandboxed frame: an opaque origin, on no list.
    page.evaluate(
        "() => { const f = document.createElement('iframe'); f.name = 'stranger'; "
        "f.sandbox = 'allow-scripts'; f.srcdoc = '<p>elsewhere</p>'; document.body.append(f); }"
    )
    page.wait_for_timeout(300)
    page.frame(name="sibling").evaluate(f"parent.frames[0].postMessage({message}, '*')")
    page.frame(name="stranger").evaluate(f"parent.frames[0].postMessage({message}, '*')")
    page.frames[1].evaluate(f"window.postMessage({message}, '*')")  # the panel to itself
    frame = page.frames[1]
    deadline = time.monotonic() + 5
    while frame.evaluate("document.documentElement.dataset.crmIgnored") != "3":
        assert time.monotonic() < deadline, frame.evaluate(
            "document.documentElement.dataset.crmIgnored"
        )
        time.sleep(0.05)
    page.wait_for_timeout(500)
    assert sent(simulator, "dial") == []
    expect(panel(page).locator(".calls")).to_contain_text("No calls.")


def test_a_page_not_on_the_list_cannot_frame_the_panel(crm, alice, browser):
    context = browser.new_context()
    page = context.new_page()
    refused = []
    page.on("console", lambda m: refused.append(m.text) if "frame-ancestors" in m.text else None)
    page.goto(f"{crm.other_origin_url}/")  # the same CRM page, from an origin not allowed
    page.wait_for_timeout(1500)
    frame_url = page.frames[1].url
    context.close()
    assert refused, "the browser did not report a frame-ancestors refusal"
    assert frame_url.startswith("chrome-error:"), frame_url  # an error page, not the panel


def cookieless_profile(playwright_dir: Path) -> None:
    """A Chromium profile that refuses every cookie, first- and third-party (as a locked-down
    browser or Safari with some settings does): only the launch link can work there."""
    profile = playwright_dir / "Default"
    profile.mkdir(parents=True)
    (profile / "Preferences").write_text(
        json.dumps({"profile": {"default_content_setting_values": {"cookies": 2}}})
    )


def test_a_launch_link_works_where_every_cookie_is_refused(
    crm, simulator, alice, tmp_path, playwright
):
    cookieless_profile(tmp_path)
    errors: list[str] = []
    # A browser of its own: the profile refuses cookies from the start.
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path),
        executable_path=chromium.CHROMIUM,
        args=chromium.ARGS,
        viewport={"width": 1280, "height": 800},
    )
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(f"{crm.url}/?mode=launch")
        frame = panel(page)
        expect(frame.locator(".status")).to_be_visible()
        expect(frame.locator("#live-status")).to_have_text("Live")  # the stream, by token
        assert page.frames[1].evaluate("document.cookie") == ""
        assert page.frames[1].url.endswith(f"/embed/{alice.tenant.slug}/")  # link used up

        page.click("#go-ready")
        expect(frame.locator(".state-pill")).to_have_text(re.compile("Ready"))
        page.locator("tr[data-phone='07700900123'] button.dial").click()
        expect(frame.locator("#call-1000")).to_contain_text("Connected")
        assert len(sent(simulator, "dial")) == 1

        page.reload()  # the CRM's server signs a fresh link for every page
        expect(frame.locator("#call-1000")).to_be_visible()

        page.goto(f"{crm.url}/?mode=login")  # no launch link and no cookie: say so
        expect(frame.locator("#cookies-refused")).to_be_visible()
        expect(frame.locator("#login-form")).to_be_hidden()
    finally:
        context.close()
    assert not errors, errors
