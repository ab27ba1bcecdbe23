"""Live updates in a real browser: nothing is clicked, the panel follows MaxContact."""

import re
import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)
# What arrives by push: generous, since the machine running the tests is shared. Freshness
# itself is measured by `make bench`, not asserted here.
LIVE_TIMEOUT = 20_000


def open_panel(context, url):
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{url}/")
    if page.locator("#id_username").count():
        page.fill("#id_username", "alice")
        page.fill("#id_password", "panel-pw-123")
        page.click("button[type=submit]")
    expect(page.locator("#live-status")).to_have_text("Live")
    return page, errors


def press_ready(page):
    """The agent goes ready in the panel, as she would: from then on she is polled fast."""
    page.get_by_role("button", name=re.compile("^Ready")).click()
    expect(page.locator(".state-pill")).to_have_text(re.compile("Ready"))


def getcalls(simulator):
    return [r for r in simulator.requests() if "/getcalls/user/101" in r["path"].lower()]


def test_an_offered_call_appears_and_a_hang_up_moves_to_wrap_up(
    live_stack, simulator, alice, browser
):
    context = browser.new_context()
    page, errors = open_panel(context, live_stack.url)
    press_ready(page)
    page.wait_for_timeout(11_000)  # long enough in "Ready" for a stale timer to show
    offered = time.monotonic()
    simulator.offer(101, phone="07700900456")
    expect(page.locator("#call-1000")).to_contain_text("07700 900456", timeout=LIVE_TIMEOUT)
    seen_after = time.monotonic() - offered
    expect(page.locator("#call-1000")).to_contain_text("Connected")
    # What her last click did stays on screen: a live update does not wipe it.
    expect(page.locator("#notice")).to_contain_text("You are ready for calls.")
    expect(page.locator("#announcer")).to_contain_text("07700 900456")  # said, not only shown
    # The state timer restarted with the new state (a morph keeps the element, not its start).
    expect(page.locator(".status .timer")).to_have_text(re.compile(r"^0:0\d$"))
    simulator.customer_hangup(1000)
    expect(page.locator(".banner-wrap")).to_contain_text("One call needs a result.")
    expect(page.locator(".state-pill")).to_have_text(re.compile("Wrap-up"))
    context.close()
    assert not errors
    print(f"offered call visible after {seen_after:.2f} s")


def test_two_tabs_both_update_and_closing_both_stops_polling(live_stack, simulator, alice, browser):
    context = browser.new_context()
    first, _ = open_panel(context, live_stack.url)
    second, _ = open_panel(context, live_stack.url)
    press_ready(first)
    simulator.offer(101)
    for page in (first, second):
        expect(page.locator("#call-1000")).to_be_visible(timeout=LIVE_TIMEOUT)

    # An action in one tab shows in the other.
    first.locator("#call-1000").get_by_role("button", name=re.compile("^Hold")).click()
    expect(second.locator("#call-1000")).to_contain_text("On hold", timeout=LIVE_TIMEOUT)

    first.close()
    time.sleep(2)
    assert getcalls(simulator)[-1]["time"] > time.time() - 2.5  # the other tab keeps her polled
    second.close()
    context.close()
    time.sleep(1.5)
    settled = len(getcalls(simulator))
    time.sleep(3)
    assert len(getcalls(simulator)) == settled  # no panel open: not polled at all


def test_a_typed_disposition_survives_a_pushed_update(live_stack, simulator, alice, browser):
    context = browser.new_context()
    page, _ = open_panel(context, live_stack.url)
    press_ready(page)
    simulator.offer(101)
    expect(page.locator("#call-1000")).to_be_visible(timeout=LIVE_TIMEOUT)
    simulator.customer_hangup(1000)
    notes = page.locator("#call-1000").get_by_label("Notes (optional)")
    expect(notes).to_be_visible(timeout=LIVE_TIMEOUT)
    notes.fill("Customer asked for a callback on Friday")
    # Something else changes: a second call is offered to her (the push re-renders the list).
    simulator.offer(101, force=True)
    expect(page.locator("#call-1001")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(notes).to_have_value("Customer asked for a callback on Friday")
    context.close()


def test_without_the_stream_the_page_refreshes_itself_and_says_so(
    live_stack, simulator, alice, browser
):
    context = browser.new_context()
    page = context.new_page()
    page.route("**/panel/stream", lambda route: route.abort())  # a proxy that refuses it
    page.goto(f"{live_stack.url}/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "panel-pw-123")
    page.click("button[type=submit]")
    press_ready(page)
    status = page.locator("#live-status")
    expect(status).to_have_text("Not live: refreshing every 5 s", timeout=15000)
    simulator.offer(101)
    expect(page.locator("#call-1000")).to_be_visible(timeout=8000)  # by the page's own refresh

    page.unroute("**/panel/stream")
    expect(status).to_have_text("Live", timeout=20000)  # back on the stream by itself
    context.close()
