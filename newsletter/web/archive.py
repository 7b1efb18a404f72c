"""The public archive: each list's past editions, and an RSS feed of them.

Every page here is public and cacheable. An edition's page is the email itself ("View in
your browser"), so it carries its own Content-Security-Policy: the email's inline styles
and https images must render, while scripts, frames and forms stay forbidden.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from newsletter.db import session_scope
from newsletter.editions import archive
from newsletter.lists.service import find_list
from newsletter.models import EditionStatus, Frequency
from newsletter.web.context import message, render, web

router = APIRouter(prefix="/archive", tags=["archive"])

EDITION_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# A sent edition never changes again; one still going out may yet be paused or cancelled,
# and then leaves the archive, so caches keep it briefly.
CACHE_SENT = "public, max-age=86400"
CACHE_SENDING = "public, max-age=300"
CACHE_LISTING = "public, max-age=300"
RSS_TYPE = "application/rss+xml; charset=utf-8"

# Where the archive's "Unsubscribe" and "Manage preferences" links lead: the list page's
# section that explains how to use the links in one's own email.
MANAGE_ANCHOR = "manage"

Page = Annotated[int, Query(ge=1, le=1_000_000, description="Page of 30 editions, from 1.")]


def _no_list(request: Request) -> HTMLResponse:
    return message(
        request, "No such newsletter", "There is no newsletter archive at this address.",
        link={"url": "/subscribe", "label": "See our newsletters"}, status_code=404,
    )  # fmt: skip


def _no_edition(request: Request, slug: str, name: str) -> HTMLResponse:
    return message(
        request, "No edition here",
        f"{name} has no edition at this address. It may not have been sent yet.",
        link={"url": f"/archive/{slug}", "label": f"All editions of {name}"},
        status_code=404, brand=name,
    )  # fmt: skip


def _cached(
    request: Request, body: bytes, *, media_type: str, cache_control: str,
    headers: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    """``body`` with an ETag, or 304 when the client already holds it (feed readers poll)."""
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    all_headers = {"cache-control": cache_control, "etag": etag, **(headers or {})}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=all_headers)
    return Response(body, media_type=media_type, headers=all_headers)


@router.get("/{slug}", response_class=HTMLResponse, summary="A list's past editions")
def editions_page(request: Request, slug: str, page: Page = 1) -> Response:
    settings = web(request).settings
    with session_scope(settings.database_url) as session:
        nl = find_list(session, slug)
        if nl is None:
            return _no_list(request)
        listing = archive.archive_page(session, nl, page, settings)
        name, description = nl.name, nl.description
    if page > listing.pages:
        return message(
            request, "No such page",
            f"The archive of {name} has {listing.pages} page{'s' if listing.pages > 1 else ''}.",
            link={"url": f"/archive/{slug}", "label": "The newest editions"},
            status_code=404, brand=name,
        )  # fmt: skip
    response = render(
        request, "archive/list.html", brand=name, description=description, slug=slug,
        listing=listing, manage_anchor=MANAGE_ANCHOR,
    )  # fmt: skip
    response.headers["cache-control"] = CACHE_LISTING
    return response


@router.get(
    "/{slug}/feed.xml", summary="RSS 2.0 feed of a list's latest editions",
    response_class=Response, responses={200: {"content": {"application/rss+xml": {}}}},
)  # fmt: skip
def feed(request: Request, slug: str) -> Response:
    settings = web(request).settings
    with session_scope(settings.database_url) as session:
        nl = find_list(session, slug)
        if nl is None:
            return _no_list(request)
        body = archive.rss(nl, archive.feed_entries(session, nl, settings), settings)
    return _cached(request, body, media_type=RSS_TYPE, cache_control=CACHE_LISTING)


def _edition_page(request: Request, slug: str, day: str, frequency: Frequency) -> Response:
    settings = web(request).settings
    with session_scope(settings.database_url) as session:
        nl = find_list(session, slug)
        if nl is None:
            return _no_list(request)
        # An impossible date answers like a missing edition: it is just an address with
        # nothing at it, not a form the reader filled in wrongly.
        wanted = archive.edition_date(day)
        edition = archive.public_edition(session, nl, wanted, frequency) if wanted else None
        if edition is None:
            return _no_edition(request, slug, nl.name)
        body = archive.reader_view(edition, manage_url=f"/archive/{slug}#{MANAGE_ANCHOR}")
        sent = edition.status == EditionStatus.SENT
    return _cached(
        request, body.encode(), media_type="text/html; charset=utf-8",
        cache_control=CACHE_SENT if sent else CACHE_SENDING,
        headers={"content-security-policy": EDITION_CSP},
    )  # fmt: skip


@router.get("/{slug}/{day}", response_class=HTMLResponse, summary="A daily edition's web page")
def daily_edition(request: Request, slug: str, day: str) -> Response:
    return _edition_page(request, slug, day, Frequency.DAILY)


@router.get(
    "/{slug}/{day}/weekly", response_class=HTMLResponse, summary="A weekly edition's web page"
)
def weekly_edition(request: Request, slug: str, day: str) -> Response:
    return _edition_page(request, slug, day, Frequency.WEEKLY)
