"""An agent's day in a real browser: Chromium, the panel under uvicorn, the simulator behind it."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(page, panel_server, username="alice"):
    page.goto(f"{panel_server.url}/")
    page.fill("#id_username", username)
    page.fill("#id_password", "panel-pw-123")
    page.click("button[type=submit]")
    expect(page.locator(".status")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("data-panel-ready", "true")


JOURNEY = ("goready", "dial", "hold", "retrieve", "stoprecord", "startrecord", "hangup", "dispose")


def assert_each_sent_once(simulator, methods):
    for method in methods:
        assert len(sent(simulator, method)) == 1, method


def press(page, key):
    """Press a shortcut once the last request has finished: the panel ignores shortcuts while
    one is in flight (never two actions from one intent), and a live update can show the
    result before the request itself has finished."""
    expect(page.locator(".htmx-request")).to_have_count(0)
    page.keyboard.press(key)


def card(page, call_id=1000):
    return page.locator(f"#call-{call_id}")


def sent(simulator, method):
    return [r for r in simulator.requests() if f"/telephony/{method}/" in r["path"].lower()]


def test_an_agents_main_journey(panel_server, simulator, alice, page):
    log_in(page, panel_server)
    expect(page.locator(".state-pill")).to_have_text(re.compile("Not ready"))

    page.get_by_role("button", name=re.compile("^Ready")).click()
    expect(page.locator(".notice")).to_contain_text("You are ready for calls.")
    expect(page.locator(".state-pill")).to_have_text(re.compile("Ready"))

    page.fill("#dial-phone", "07700 900123")
    page.get_by_role("button", name="Dial", exact=True).click()
    expect(card(page)).to_contain_text("07700 900123")
    expect(card(page)).to_contain_text("Connected")
    expect(page.locator("#dial-phone")).to_have_value("")  # cleared after a successful dial
    screenshot(page, "journey-call")

    card(page).get_by_role("button", name=re.compile("^Hold")).click()
    expect(card(page)).to_contain_text("On hold")
    card(page).get_by_role("button", name=re.compile("^Take off hold")).click()
    expect(card(page)).to_contain_text("Connected")

    card(page).get_by_role("button", name=re.compile("^Pause recording")).click()
    pci = card(page).locator(".recording-stopped")
    expect(pci).to_be_visible()
    expect(pci).to_contain_text("Recording paused (PCI)")
    screenshot(page, "journey-pci")
    page.reload()  # the PCI warning does not depend on the click that caused it
    expect(card(page).locator(".recording-stopped")).to_be_visible()
    card(page).get_by_role("button", name=re.compile("^Resume recording")).click()
    expect(card(page).locator(".recording-stopped")).to_have_count(0)

    card(page).get_by_role("button", name=re.compile("^Hang up")).click()
    expect(page.locator(".banner-wrap")).to_contain_text("One call needs a result.")
    card(page).get_by_label(re.compile("^Result")).select_option("SALE")
    card(page).get_by_label("Notes (optional)").fill("Paid by card")
    screenshot(page, "journey-wrapup")
    card(page).get_by_role("button", name="Finish call").click()
    expect(page.locator(".calls")).to_contain_text("No calls.")

    assert_each_sent_once(simulator, JOURNEY)


def test_a_double_click_dials_once(panel_server, simulator, alice, page):
    log_in(page, panel_server)
    page.get_by_role("button", name=re.compile("^Ready")).click()
    expect(page.locator(".notice")).to_contain_text("You are ready")
    page.fill("#dial-phone", "07700 900123")
    page.get_by_role("button", name="Dial", exact=True).dblclick()
    expect(card(page)).to_contain_text("07700 900123")
    page.wait_for_timeout(500)  # let a second request, if any, arrive
    assert len(sent(simulator, "dial")) == 1


def test_warm_transfer(panel_server, simulator, alice, page):
    log_in(page, panel_server)
    page.get_by_role("button", name=re.compile("^Ready")).click()
    page.fill("#dial-phone", "07700 900123")
    page.get_by_role("button", name="Dial", exact=True).click()
    expect(card(page)).to_contain_text("Connected")

    card(page).locator("summary", has_text="Transfer").click()
    card(page).get_by_label("Transfer to").fill("0161 496 0000")
    card(page).get_by_role("button", name="Hold the customer and dial").click()
    expect(page.locator(".transfer")).to_contain_text("Step 2 of 2")
    expect(card(page, 1000)).to_contain_text("On hold")
    expect(card(page, 1001)).to_contain_text("0161 496 0000")
    screenshot(page, "journey-transfer")
    page.get_by_role("button", name="Connect the calls").click()
    expect(page.locator(".notice")).to_contain_text("the transfer is complete")
    expect(page.locator(".calls")).to_contain_text("No calls.")
    assert len(sent(simulator, "connectcalls")) == 1


def test_a_failing_action_says_what_happened_and_what_to_do(panel_server, simulator, alice, page):
    log_in(page, panel_server)
    page.get_by_role("button", name=re.compile("^Ready")).click()
    page.fill("#dial-phone", "07700 900123")
    page.get_by_role("button", name="Dial", exact=True).click()
    expect(card(page)).to_contain_text("Connected")
    simulator.fault("status", status=503, path_contains="/hold/")
    card(page).get_by_role("button", name=re.compile("^Hold")).click()
    error = page.locator(".notice-error")
    expect(error).to_contain_text("server error (HTTP 503)")
    expect(error).to_contain_text("not sent twice")
    expect(card(page)).to_contain_text("Connected")  # the panel still shows the call
    assert len(sent(simulator, "hold")) == 1


def test_a_wrong_number_keeps_what_was_typed(panel_server, simulator, alice, page):
    log_in(page, panel_server)
    page.fill("#dial-phone", "0770")
    page.get_by_role("button", name="Dial", exact=True).click()
    expect(page.locator("#dial-phone-error")).to_contain_text("wrong number of digits")
    expect(page.locator("#dial-phone")).to_have_value("0770")
    expect(page.locator("#dial-phone")).to_have_attribute("aria-invalid", "true")
    assert sent(simulator, "dial") == []


def test_directory_and_lead_panels_load_when_opened(panel_server, simulator, alice, page):
    log_in(page, panel_server)
    directory = page.locator(".directory")
    directory.locator("summary", has_text="Campaigns").click()
    expect(directory).to_contain_text("Home Energy Renewals")
    directory.locator("summary", has_text="Users").click()
    page.fill("#user-search", "carol")
    expect(page.locator("#user-results")).to_contain_text("Carol Clark")
    expect(page.locator("#user-results")).not_to_contain_text("Bob Baker")

    page.get_by_role("button", name=re.compile("^Ready")).click()
    page.fill("#dial-phone", "07700 900123")
    page.get_by_role("button", name="Dial", exact=True).click()
    card(page).locator("summary", has_text="Lead and number").click()
    expect(card(page)).to_contain_text("Phones of lead 4000123")
    card(page).get_by_role("button", name="Move call here").last.click()
    expect(page.locator(".notice")).to_contain_text("Call moved to that lead.")
    assert len(sent(simulator, "changelead")) == 1


def test_the_main_journey_by_keyboard_alone(panel_server, simulator, alice, page):
    page.goto(f"{panel_server.url}/")
    page.keyboard.press("Tab")  # the skip link or the first field: typing goes to the username
    page.focus("#id_username")
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type("panel-pw-123")
    page.keyboard.press("Enter")
    expect(page.locator(".status")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("data-panel-ready", "true")

    press(page, "r")
    expect(page.locator(".state-pill")).to_have_text(re.compile("Ready"))
    press(page, "d")
    expect(page.locator("#dial-phone")).to_be_focused()
    page.keyboard.type("07700 900123")
    page.keyboard.press("Enter")
    expect(card(page)).to_contain_text("Connected")
    page.keyboard.press("Escape")  # leave the number field

    press(page, "o")
    expect(card(page)).to_contain_text("On hold")
    press(page, "o")
    expect(card(page)).to_contain_text("Connected")
    press(page, "p")
    expect(card(page).locator(".recording-stopped")).to_be_visible()
    press(page, "p")
    expect(card(page).locator(".recording-stopped")).to_have_count(0)
    press(page, "h")
    expect(page.locator(".banner-wrap")).to_be_visible()
    press(page, "w")
    result = card(page).get_by_label(re.compile("^Result"))
    expect(result).to_be_focused()
    result.select_option("SALE")  # what the arrow keys do in a select, made exact
    page.keyboard.press("Tab")  # notes
    page.keyboard.type("Keyboard only")
    page.keyboard.press("Tab")  # Finish call
    page.keyboard.press("Enter")
    expect(page.locator(".calls")).to_contain_text("No calls.")

    assert_each_sent_once(simulator, JOURNEY)


def test_a_held_down_key_sends_one_action(panel_server, simulator, alice, page):
    log_in(page, panel_server)
    page.keyboard.press("r")
    page.keyboard.press("d")
    page.keyboard.type("07700 900123")
    page.keyboard.press("Enter")
    expect(card(page)).to_contain_text("Connected")
    page.keyboard.press("Escape")
    expect(page.locator(".htmx-request")).to_have_count(0)  # the dial's own answer is in
    page.keyboard.down("o")  # key repeat while held
    page.keyboard.down("o")
    page.keyboard.down("o")
    page.keyboard.up("o")
    expect(card(page)).to_contain_text("On hold")
    page.wait_for_timeout(500)
    assert len(sent(simulator, "hold")) == 1
