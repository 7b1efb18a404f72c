"""Rendering benchmark: one edition rendered once vs. a naive render per recipient.

Prints JSON lines {"metric", "value", "unit"}:
  render_cold_ms_{10,25}     first render of an edition of 10 / 25 posts (Jinja+MJML+premailer)
  render_ms_{10,25}          median of the following renders
  html_bytes_{10,25}         its HTML size (Gmail clips above 104,448 bytes)
  full_stories_25            stories shown in full at 25 posts (the rest collapse to headlines)

Personalisation has its own benchmark: bench/personalise.py.

Usage: python bench/render.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, date, datetime

from newsletter.delivery.prepared import PreparedEdition
from newsletter.delivery.verp import ReturnPath
from newsletter.posts.sources import parse_feed
from newsletter.rendering.digest import DigestContext, Story, render_digest
from newsletter.resources import data_path

BUDGET = 100_000


def emit(metric: str, value: float, unit: str) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit}), flush=True)


def stories(count: int) -> list[Story]:
    posts = parse_feed(data_path("sample_feed.xml").read_bytes(), now=datetime.now(UTC)).posts
    result = []
    for i in range(count):
        p = posts[i % len(posts)]
        result.append(
            Story(
                title=p.title if i < len(posts) else f"{p.title} ({i})",
                url=p.url, dek=p.dek, summary=p.summary, category=p.category,
                image_url=p.image_url, image_alt=p.image_alt or p.title,
            )
        )  # fmt: skip
    return result


CONTEXT = DigestContext(
    list_name="Shortlysts Daily",
    language="en",
    edition_date=date(2025, 5, 16),
    site_name="Shortlysts",
    site_url="https://www.shortlysts.com",
    postal_address="Shortlysts, 1 Example Street, Springfield",
)


def time_render(count: int, repeat: int = 5) -> tuple[float, float, int, int]:
    """Cold (first in this process: premailer's CSS caches empty) and median warm times."""
    items = stories(count)
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        email, full = render_digest(CONTEXT, items, budget_bytes=BUDGET)
        timings.append(time.perf_counter() - started)
    return timings[0] * 1000, statistics.median(timings[1:]) * 1000, email.html_bytes, full


def prepared(
    email_html: str, email_text: str, subject: str, *, return_path: ReturnPath | None = None
) -> PreparedEdition:
    """The rendered CONTEXT's edition, ready to personalise (with VERP envelope senders
    under ``return_path``)."""
    return PreparedEdition(
        edition_id=1, list_id=1, list_slug="daily", list_name="Shortlysts Daily",
        subject=subject, html=email_html, text=email_text, from_name="Shortlysts",
        from_address="digest@shortlysts.example.com", reply_to=None, domain="example.com",
        base_url="https://news.example.com", date=datetime.now(UTC),
        secret_key="bench",  # noqa: S106
        markers=CONTEXT.markers, return_path=return_path,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()

    for count in (10, 25):
        cold, warm, size, full = time_render(count)
        emit(f"render_cold_ms_{count}", cold, "ms")
        emit(f"render_ms_{count}", warm, "ms")
        emit(f"html_bytes_{count}", size, "bytes")
        if count == 25:
            emit("full_stories_25", full, "stories")


if __name__ == "__main__":
    main()
