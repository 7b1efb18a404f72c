"""Every message the demo sends, and the stress edition, as Chromium lays them out: at a
phone's 375 px and a desktop client's 640 px, with images loaded and blocked, in light and
dark mode. No sideways scrolling, standards mode, right-to-left stories right-aligned, and
every text readable on its background.

Screenshots of the stress digest at 375 px go under the test's tmp dir, and also to
``NEWSLETTER_SCREENSHOT_DIR`` if set.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route

from tests.browser.test_responsive import OVERFLOWING
from tests.sent_messages import MESSAGES, SentMessage

WIDTHS = (375, 640)

# Text whose colour is too close to its background's (WCAG 2 contrast ratio), walking up to
# the first element with a background.
LOW_CONTRAST = """(minimum) => {
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const channel = v => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const luminance = ([r, g, b]) =>
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const dark = matchMedia('(prefers-color-scheme: dark)').matches;
  const canvas = dark ? [18, 18, 18] : [255, 255, 255];
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const v = rgb(getComputedStyle(e).backgroundColor);
      if (v.length === 3 || (v.length === 4 && v[3] > 0)) return v.slice(0, 3);
    }
    return canvas;
  };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('.preheader')) continue;
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    if (el.offsetParent === null) continue;
    const [fg, bg] = [rgb(style.color), background(el)];
    const [a, b] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const text = el.textContent.trim().slice(0, 40);
    if (ratio < minimum) low.push(`"${text}": ${fg} on ${bg}, ${ratio.toFixed(2)}`);
  }
  return low;
}"""

# Each line of a right-to-left story's title, heading and paragraphs must end at the right
# (a line of mixed scripts is several boxes: its rightmost one counts).
RTL_MISALIGNED = """() => [...document.querySelectorAll('div[dir="rtl"] h2, div[dir="rtl"] p')]
  .filter(el => el.textContent.trim())
  .flatMap(el => {
    const box = el.getBoundingClientRect(), range = document.createRange();
    range.selectNodeContents(el);
    const lines = new Map();
    for (const r of range.getClientRects()) {
      if (r.width === 0) continue;
      const top = Math.round(r.top);
      lines.set(top, Math.max(lines.get(top) ?? -Infinity, r.right));
    }
    return [...lines.values()].filter(right => box.right - right > 2)
      .map(right => `${el.textContent.trim().slice(0, 30)}: ${box.right - right} px short`);
  })"""


def _png(width: int, height: int) -> bytes:
    """A plain grey PNG, larger than any column: it must shrink to fit."""
    row = b"\x00" + b"\x88\x88\x88" * width
    chunk = lambda kind, data: (  # noqa: E731
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


IMAGE = _png(1200, 630)


@pytest.fixture(scope="module")
def messages(sent: dict[str, SentMessage]) -> dict[str, str]:
    """Each message's HTML as sent."""
    return {name: message.html for name, message in sent.items()}


def _open(page: Page, html: str, *, images: bool) -> None:
    def answer(route: Route) -> None:
        if route.request.resource_type == "image" and images:
            route.fulfill(status=200, content_type="image/png", body=IMAGE)
        else:
            route.abort()

    page.route("**/*", answer)
    page.set_content(html, wait_until="load")


def _keep(shot: Path) -> None:
    keep = os.environ.get("NEWSLETTER_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


@pytest.fixture(params=WIDTHS, ids=lambda width: f"{width}px")
def width(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def page_at(browser: Browser, width: int) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize("images", [True, False], ids=["images", "no-images"])
@pytest.mark.parametrize("name", MESSAGES)
def test_no_sideways_scrolling_in_standards_mode(
    messages: dict[str, str], page_at: Page, width: int, name: str, images: bool
) -> None:
    _open(page_at, messages[name], images=images)

    assert page_at.evaluate("document.compatMode") == "CSS1Compat"
    assert page_at.evaluate("document.documentElement.scrollWidth") <= width
    assert page_at.evaluate(OVERFLOWING, width) == []


@pytest.mark.parametrize("images", [True, False], ids=["images", "no-images"])
def test_right_to_left_stories_are_right_aligned(
    messages: dict[str, str], page_at: Page, width: int, images: bool, tmp_path: Path
) -> None:
    _open(page_at, messages["stress digest"], images=images)

    assert page_at.locator('div[dir="rtl"] h2').count() > 0
    assert page_at.evaluate(RTL_MISALIGNED) == []
    shot = tmp_path / f"stress-digest-{width}px-{'images' if images else 'no-images'}.png"
    page_at.screenshot(path=str(shot), full_page=True)
    _keep(shot)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", MESSAGES)
def test_every_text_is_readable_on_its_background(
    messages: dict[str, str], browser: Browser, name: str, scheme: str
) -> None:
    context = browser.new_context(viewport={"width": 640, "height": 900}, color_scheme=scheme)
    try:
        page = context.new_page()
        _open(page, messages[name], images=False)

        assert page.evaluate(LOW_CONTRAST, 4.5) == []
    finally:
        context.close()


def test_the_digest_turns_dark_in_dark_mode(messages: dict[str, str], browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 640, "height": 900}, color_scheme="dark")
    try:
        page = context.new_page()
        _open(page, messages["demo digest"], images=False)

        card = page.locator(".card").first.evaluate("el => getComputedStyle(el).backgroundColor")
        assert card == "rgb(31, 41, 55)"
    finally:
        context.close()
