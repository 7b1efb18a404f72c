"""The digest as a browser (and a webmail client) lays it out: in standards mode."""

from __future__ import annotations

from datetime import date

from playwright.sync_api import Page

from newsletter.rendering.digest import DigestContext, Story, render_digest


def test_the_digest_renders_in_standards_mode_not_quirks(page: Page) -> None:
    context = DigestContext(
        list_name="Shortlysts Daily", language="en", edition_date=date(2025, 5, 16),
        site_name="Shortlysts", site_url="https://www.shortlysts.com",
        postal_address="1 Example St",
    )  # fmt: skip
    story = Story(
        title="A story", url="https://www.shortlysts.com/a", dek="Its dek.", summary="Summary.",
        category="World", image_url=None, image_alt="",
    )  # fmt: skip
    email, _ = render_digest(context, [story], budget_bytes=100_000)

    page.set_content(email.html)

    assert page.evaluate("document.compatMode") == "CSS1Compat"
