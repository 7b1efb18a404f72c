"""The reader pages on a phone (375 px) and a desktop (1280 px), and the admin's dashboard
and edition page on a phone: no sideways scrolling, a screenshot of each, and the basics of
accessibility (labels, ``<html lang>``, one ``<h1>``).

Screenshots go under the test's tmp dir, and also to ``NEWSLETTER_SCREENSHOT_DIR`` if set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.fanout import pending_batches
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import run_batch
from newsletter.editions.service import todays_edition
from newsletter.models import EditionStatus, Feed
from newsletter.subscriptions.service import Signup, subscribe
from newsletter.subscriptions.tokens import (
    PREFERENCES,
    UNSUBSCRIBE,
    make_confirm_token,
    make_token,
)
from tests.browser.helpers import make_list, sign_in, unique_address
from tests.factories import edition_with_readers
from tests.moments import TEST_NOW
from tests.services import LiveServer

WIDTHS = {"phone": 375, "desktop": 1280}
PAGES = ("subscribe", "confirm", "preferences", "unsubscribe")

# Inputs that need no label: hidden ones, and those a sighted or assistive user never meets.
UNLABELLED_INPUTS = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter(el => el.type !== 'hidden' && !el.closest('[aria-hidden="true"]'))
    .filter(el => ![...el.labels].some(label => label.textContent.trim() !== ''))
    .map(el => el.outerHTML)"""

NAMELESS_BUTTONS = """() => [...document.querySelectorAll('button')]
    .filter(el => el.textContent.trim() === '' && !el.getAttribute('aria-label'))
    .map(el => el.outerHTML)"""

OVERFLOWING = """(width) => [...document.querySelectorAll('body *')]
    .filter(el => el.getBoundingClientRect().right > width + 0.5)
    .filter(el => !el.closest('[aria-hidden="true"]'))
    .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') + ': '
        + (el.textContent || '').trim().slice(0, 60))"""


@dataclass(frozen=True)
class Reader:
    email: str
    paths: dict[str, str]  # page name -> path on the server


def reader_pages(session: Session, settings: Settings, email: str) -> Reader:
    """A list, a confirmed reader and the links that reader's emails would carry."""
    nl = make_list(session)
    make_list(session, slug="weekend", name="Weekend Long Reads")
    subscription, _ = subscribe(
        session, nl, Signup(email), now=datetime.now(UTC), confirmed=True, source="test"
    )
    subscriber_id, list_id = subscription.subscriber_id, nl.id
    reader_key = subscription.subscriber.token_key
    session.commit()
    key = settings.secret_key
    return Reader(
        email,
        {
            "subscribe": "/subscribe",
            "confirm": "/confirm/"
            + make_confirm_token(key, subscriber_id, [list_id], reader_key, now=datetime.now(UTC)),
            "preferences": "/preferences/"
            + make_token(key, PREFERENCES, subscriber_id, list_id, reader_key),
            "unsubscribe": "/unsubscribe/"
            + make_token(key, UNSUBSCRIBE, subscriber_id, list_id, reader_key),
        },
    )


@pytest.fixture
def open_at(browser: Browser) -> Iterator[Callable[[int], Page]]:
    """Open a page in a fresh context whose viewport is ``width`` px wide (a phone below 600:
    mobile viewport handling, touch and a 2x screen)."""
    contexts = []

    def opener(width: int) -> Page:
        mobile = width < 600
        context = browser.new_context(
            viewport={"width": width, "height": 800},
            is_mobile=mobile,
            has_touch=mobile,
            device_scale_factor=2 if mobile else 1,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield opener
    for context in contexts:
        context.close()


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    target = tmp_path / "screenshots" / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 1000
    extra = os.environ.get("NEWSLETTER_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy2(target, Path(extra) / target.name)
    return target


def check_layout(page: Page, width: int) -> None:
    """No sideways scrolling. On a phone, content wider than the screen also shows as a
    layout viewport wider than the device, as the browser zooms out to fit it."""
    inner, scroll = page.evaluate("[window.innerWidth, document.documentElement.scrollWidth]")
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    problem = (
        f"scrolls sideways at {width}px (innerWidth {inner}, scrollWidth {scroll}); "
        f"too wide: {page.evaluate(OVERFLOWING, width)}"
    )
    assert fits, problem
    assert inner == width, problem


def check_accessibility(page: Page) -> None:
    lang = page.evaluate("document.documentElement.getAttribute('lang')")
    assert lang, "<html> has no lang"
    assert page.locator("h1").count() == 1, "a page needs exactly one <h1>"
    assert page.locator("h1").inner_text().strip()
    assert page.evaluate(UNLABELLED_INPUTS) == []
    assert page.evaluate(NAMELESS_BUTTONS) == []
    assert page.title().strip()


@pytest.mark.parametrize("device", list(WIDTHS))
@pytest.mark.parametrize("name", PAGES)
def test_page_fits_the_screen_and_is_labelled(
    name: str,
    device: str,
    open_at: Callable[[int], Page],
    live_server: LiveServer,
    session: Session,
    settings: Settings,
    tmp_path: Path,
) -> None:
    reader = reader_pages(session, settings, "reader@example.com")
    width = WIDTHS[device]
    page = open_at(width)
    response = page.goto(live_server.url + reader.paths[name])
    assert response is not None
    assert response.status == 200
    check_layout(page, width)
    check_accessibility(page)
    save_screenshot(page, tmp_path, f"{name}-{width}")


def test_subscribe_form_with_an_error_fits_a_phone(
    open_at: Callable[[int], Page], live_server: LiveServer, session: Session, tmp_path: Path
) -> None:
    """The form shown back with an error message, still labelled and still fitting."""
    make_list(session)
    page = open_at(WIDTHS["phone"])
    page.goto(f"{live_server.url}/subscribe")
    page.get_by_label("Email address").fill("not-an-address")
    page.get_by_role("button", name="Subscribe").click()
    assert page.get_by_role("alert").inner_text().startswith("Please check the form")
    check_layout(page, WIDTHS["phone"])
    check_accessibility(page)
    save_screenshot(page, tmp_path, "subscribe-error-375")


# Real addresses this long exist (51 characters; the limit is 254), with no hyphen to break at.
LONG_ADDRESS = "maximilian.schwarzenberger@universitaetsklinikum.de"


@pytest.mark.parametrize("name", ["preferences", "unsubscribe"])
def test_long_address_fits_a_phone(
    name: str,
    open_at: Callable[[int], Page],
    live_server: LiveServer,
    session: Session,
    settings: Settings,
    tmp_path: Path,
) -> None:
    reader = reader_pages(session, settings, LONG_ADDRESS)
    page = open_at(WIDTHS["phone"])
    page.goto(live_server.url + reader.paths[name])
    expect(page.get_by_text(LONG_ADDRESS)).to_be_visible()
    save_screenshot(page, tmp_path, f"{name}-long-address-375")
    check_layout(page, WIDTHS["phone"])


# A feed URL as long as real ones get, with no place to break.
LONG_FEED_URL = "https://feeds.example.com/" + "news-and-analysis-" * 6 + "rss.xml"


def admin_pages(session: Session, settings: Settings) -> dict[str, str]:
    """The admin at its widest: a list whose edition went out (progress, what came back), a
    draft with every button and form, a failing feed with a long address and error; returns
    the pages' paths."""
    moment = TEST_NOW  # the posts' window and the lists' 07:00 editions are known then
    sent = edition_with_readers(
        session, make_list(session, name="The Morning Brief, Weekday Edition"),
        [unique_address() for _ in range(3)], now=moment, settings=settings,
    )  # fmt: skip
    start_sending(session, sent.id, now=moment)
    session.commit()
    for batch in pending_batches(session, sent.id, batch_size=50):
        run_batch(session, batch, MemoryTransport(), settings, clock=lambda: moment)
    evening = make_list(session, slug="evening", name="The Evening Long Read, Weekend Edition")
    draft = todays_edition(session, evening, now=moment, settings=settings).edition
    draft.status = EditionStatus.DRAFT
    session.add(
        Feed(url=LONG_FEED_URL, consecutive_errors=7, last_error="HTTP 503 " + "upstream " * 12)
    )
    session.commit()
    return {
        "dashboard": "/admin",
        "edition-sent": f"/admin/editions/{sent.id}",
        "edition-draft": f"/admin/editions/{draft.id}",
    }


@pytest.mark.parametrize("name", ["dashboard", "edition-sent", "edition-draft"])
def test_admin_page_fits_a_phone(
    name: str,
    open_at: Callable[[int], Page],
    live_server: LiveServer,
    session: Session,
    settings: Settings,
    tmp_path: Path,
) -> None:
    paths = admin_pages(session, settings)
    page = open_at(WIDTHS["phone"])
    sign_in(page, live_server.url, session)
    page.goto(live_server.url + paths[name])
    save_screenshot(page, tmp_path, f"admin-{name}-375")
    check_layout(page, WIDTHS["phone"])
    check_accessibility(page)
