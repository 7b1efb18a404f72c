"""Every way an editor changes which posts an edition holds, and in what order, answers with
the new edition, never a 500: the posts' positions in an edition are unique, so they must be
moved without two of them ever sharing one (issue 10, finding 5)."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions.build import ordered_items
from newsletter.models import Edition, EditionStatus, NewsletterList
from newsletter.posts.ingest import upsert_posts
from tests.factories import edition_with_readers, post
from tests.web.conftest import AdminClient, AppFactory

READERS = ["ada@example.com", "bo@example.com"]


@pytest.fixture
def api(make_client: AppFactory, api_token: str) -> TestClient:
    """The editor API as the CMS sees it: a server error is a 500, not a test's exception."""
    return make_client(
        headers={"authorization": f"Bearer {api_token}"}, raise_server_exceptions=False
    )


@pytest.fixture
def early_edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    """Today's edition, prepared at 06:00 (before the 07:00 send) with four posts."""
    built_at = now.replace(hour=6, minute=0)
    edition = edition_with_readers(
        session, daily_list, READERS, now=built_at, settings=settings, posts=4
    )
    edition.status = EditionStatus.DRAFT
    session.commit()
    return edition


def publish(session: Session, *numbers_and_times: tuple[int, datetime]) -> None:
    upsert_posts(session, [post(number, at) for number, at in numbers_and_times])
    session.commit()


def publish_two_after(session: Session, edition: Edition) -> None:
    """Story number 10 and 11, published 10 and 20 minutes after the edition was built."""
    built_at = edition.cutoff
    publish(session, (10, built_at + timedelta(minutes=10)), (11, built_at + timedelta(minutes=20)))


def titles(detail: dict[str, Any]) -> list[str]:
    return [p["title"] for p in detail["posts"]]


def stored_titles(session: Session, edition: Edition) -> list[str]:
    session.expire_all()
    found = session.get_one(Edition, edition.id)
    return [item.post.title for item in ordered_items(found)]


def test_refresh_of_an_edition_with_several_posts_puts_the_new_ones_on_top(
    api: TestClient, session: Session, early_edition: Edition
) -> None:
    publish_two_after(session, early_edition)

    response = api.post(f"/api/v1/editions/{early_edition.id}/refresh")

    assert response.status_code == 200, response.text
    assert response.json()["added"] == 2
    assert titles(response.json()["edition"]) == [
        "Story number 11",
        "Story number 10",
        "Story number 0",
        "Story number 1",
        "Story number 2",
        "Story number 3",
    ]
    assert [p["position"] for p in response.json()["edition"]["posts"]] == [1, 2, 3, 4, 5, 6]


def test_refresh_keeps_pinned_posts_on_top_and_the_editors_order_below(
    api: TestClient, session: Session, early_edition: Edition
) -> None:
    ids = [item.post_id for item in ordered_items(early_edition)]
    changed = api.patch(
        f"/api/v1/editions/{early_edition.id}",
        json={"order": [ids[3], ids[2], ids[1], ids[0]], "pinned": [ids[1]]},
    )
    assert changed.status_code == 200, changed.text
    publish(session, (10, early_edition.cutoff + timedelta(minutes=10)))

    response = api.post(f"/api/v1/editions/{early_edition.id}/refresh")

    assert response.status_code == 200, response.text
    assert titles(response.json()["edition"]) == [
        "Story number 1",  # pinned
        "Story number 10",  # new: the newest news, below the pins
        "Story number 3",
        "Story number 2",
        "Story number 0",
    ]


def test_refresh_twice_then_remove_and_reorder_all_answer(
    api: TestClient, session: Session, early_edition: Edition
) -> None:
    built_at = early_edition.cutoff
    publish(session, (10, built_at + timedelta(minutes=10)))
    assert api.post(f"/api/v1/editions/{early_edition.id}/refresh").status_code == 200
    publish(session, (11, built_at + timedelta(minutes=20)))
    assert api.post(f"/api/v1/editions/{early_edition.id}/refresh").status_code == 200
    detail = api.get(f"/api/v1/editions/{early_edition.id}").json()
    ids = [p["id"] for p in detail["posts"]]

    removed = api.patch(f"/api/v1/editions/{early_edition.id}", json={"remove": ids[:2]})
    reordered = api.patch(
        f"/api/v1/editions/{early_edition.id}", json={"order": list(reversed(ids[2:]))}
    )

    assert removed.status_code == 200, removed.text
    assert reordered.status_code == 200, reordered.text
    assert titles(reordered.json()) == [
        "Story number 3",
        "Story number 2",
        "Story number 1",
        "Story number 0",
    ]


def flash(page: str) -> str:
    match = re.search(r'<p class="flash"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)) if match else ""


def test_the_admin_refresh_button_adds_the_new_posts_on_top(
    admin: AdminClient, session: Session, early_edition: Edition
) -> None:
    publish_two_after(session, early_edition)

    response = admin.post(f"/admin/editions/{early_edition.id}/refresh")

    assert response.status_code == 303, response.text
    page = admin.get(response.headers["location"])
    assert flash(page.text) == "Added 2 new posts at the top."
    assert stored_titles(session, early_edition)[:3] == [
        "Story number 11",
        "Story number 10",
        "Story number 0",
    ]


def test_the_admin_buttons_move_pin_and_remove_after_a_refresh(
    admin: AdminClient, session: Session, early_edition: Edition
) -> None:
    publish(session, (10, early_edition.cutoff + timedelta(minutes=10)))
    admin.post(f"/admin/editions/{early_edition.id}/refresh")
    session.expire_all()
    order = [item.post_id for item in ordered_items(session.get_one(Edition, early_edition.id))]

    for path in (
        f"posts/{order[4]}/move-up",
        f"posts/{order[0]}/move-down",
        f"posts/{order[2]}/pin",
        f"posts/{order[1]}/remove",
    ):
        response = admin.post(f"/admin/editions/{early_edition.id}/{path}")
        assert response.status_code == 303, (path, response.text)

    assert stored_titles(session, early_edition) == [
        "Story number 1",  # pinned
        "Story number 10",
        "Story number 3",
        "Story number 2",
    ]
