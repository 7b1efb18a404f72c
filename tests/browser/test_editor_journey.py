"""An editor's morning in a real browser, against the served app, a real Celery worker and a
real SMTP server: sign in, prepare today's edition, look at it, drop a story, test it, send
it and watch it go out; then count what the readers received."""

from __future__ import annotations

import os
import time

from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from newsletter.editors.service import create_editor
from tests.browser.helpers import (
    MAIL_TIMEOUT_S,
    end_of_day_list,
    text_part,
    unique_address,
    wait_for_mail,
)
from tests.services import LiveServer
from tests.smtp_server import Received, RecordingHandler

EDITOR_PASSWORD = "a long editor passphrase"
TITLES = ["Harbour reopens after storm", "City council votes on trams", "Library turns 100"]
REMOVED = TITLES[1]


def _morning(session: Session, readers: list[str], editor_email: str) -> None:
    """A list whose edition today is a draft, three posts from the last hour, its readers
    and an editor."""
    end_of_day_list(session, slug="journey", name="Journey Daily", titles=TITLES, readers=readers)
    create_editor(session, editor_email, EDITOR_PASSWORD, name="Morning Editor")
    session.commit()


def _mail_to(smtp: RecordingHandler, address: str) -> list[Received]:
    with smtp.lock:
        return [item for item in smtp.received if address in item.recipients]


def _wait_for_readers(smtp: RecordingHandler, readers: list[str]) -> None:
    deadline = time.monotonic() + MAIL_TIMEOUT_S
    while not all(_mail_to(smtp, reader) for reader in readers):
        assert time.monotonic() < deadline, "not every reader got the edition"
        time.sleep(0.1)


def _snap(page: Page, name: str) -> None:
    """A full-page screenshot for people to look at, when NEWSLETTER_SCREENSHOT_DIR is set."""
    folder = os.environ.get("NEWSLETTER_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=os.path.join(folder, f"admin-{name}.png"), full_page=True)


def test_an_editor_prepares_tests_and_sends_todays_edition(
    page: Page, live_server: LiveServer, smtp: RecordingHandler, session: Session
) -> None:
    readers = [unique_address() for _ in range(5)]
    editor_email = unique_address("editor")
    _morning(session, readers, editor_email)

    # Sign in: the admin sends a stranger to its login page first.
    page.goto(f"{live_server.url}/admin")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Email").fill(editor_email)
    page.get_by_label("Password").fill(EDITOR_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    _snap(page, "dashboard")

    # Today's edition, built from the dashboard: a draft, with its preview.
    page.get_by_role("button", name="Prepare today's edition of Journey Daily").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Journey Daily")
    expect(page.locator("#status-badge")).to_have_text("draft")
    expect(page.get_by_title("Desktop preview")).to_be_visible()
    expect(page.get_by_title("Phone preview")).to_be_visible()
    desktop = page.frame_locator("iframe.desktop")
    expect(desktop.get_by_text(REMOVED).first).to_be_visible()
    expect(page.locator("pre.text")).to_contain_text(REMOVED.upper())
    _snap(page, "edition-draft")

    # One story goes.
    page.get_by_role("button", name=f"Remove: {REMOVED}").click()
    expect(page.get_by_role("status").first).to_have_text(f"Removed “{REMOVED}” from this edition.")
    expect(page.locator("table.posts")).not_to_contain_text(REMOVED)
    expect(desktop.get_by_text(TITLES[0]).first).to_be_visible()
    expect(desktop.get_by_text(REMOVED)).to_have_count(0)

    # A test copy reaches the editor, and only the editor.
    page.get_by_role("button", name="Send a test to me").click()
    expect(page.get_by_role("status").first).to_have_text(
        f"A test copy is on its way to {editor_email}."
    )
    test_copy = wait_for_mail(smtp, editor_email, "[TEST]")
    assert str(test_copy.message["Subject"]).startswith("[TEST] ")
    assert REMOVED not in text_part(test_copy)
    assert not any(_mail_to(smtp, reader) for reader in readers)

    # Send now (after the browser's "are you sure?"), then watch it reach every reader.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Send now").click()
    expect(page.get_by_role("status").first).to_contain_text("Sending has started")
    expect(page.locator('#progress [data-field="percent"]')).to_have_text("100%", timeout=30_000)
    expect(page.locator('#progress [data-field="sent"]')).to_have_text("5")
    expect(page.locator('#progress [data-field="remaining"]')).to_have_text("0")
    expect(page.locator("#status-badge")).to_have_text("sent")
    _snap(page, "edition-sent")

    _wait_for_readers(smtp, readers)
    for reader in readers:
        received = _mail_to(smtp, reader)
        assert len(received) == 1, f"{reader} got {len(received)} messages"
        body = text_part(received[0])
        # The plain text shouts its headlines.
        assert TITLES[0].upper() in body
        assert REMOVED.upper() not in body
        html_part = received[0].message.get_body(preferencelist=("html",))
        assert html_part is not None
        assert REMOVED not in str(html_part.get_content())
    assert len(_mail_to(smtp, editor_email)) == 1  # the test copy, nothing more
