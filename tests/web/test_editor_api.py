"""The editor JSON API, as the CMS and an editor's scripts use it: each operation's result,
and its refusal (401 without a valid token, 404 unknown, 409 wrong state, 422 bad input)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions.lifecycle import start_sending
from newsletter.editors.service import revoke_token
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import (
    ApiToken,
    Edition,
    EditionStatus,
    NewsletterList,
    Post,
    Subscription,
    SubscriptionStatus,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.rendering.render import sent_size
from newsletter.subscriptions.service import Signup, import_subscribers
from tests.factories import edition_with_readers, post
from tests.moments import AROUND_THE_CLOCK, SEND_AT, inside_todays_window
from tests.web.conftest import EDITOR_EMAIL, RecordingEditionSender

READERS = ["ada@example.com", "bo@example.com"]


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    """A scheduled edition of three posts, for two readers."""
    return edition_with_readers(session, daily_list, READERS, now=now, settings=settings)


def post_ids(detail: dict[str, Any]) -> list[int]:
    return [p["id"] for p in detail["posts"]]


def stored(session: Session, edition: Edition) -> Edition:
    """The edition as the app committed it."""
    session.expire_all()
    return session.get_one(Edition, edition.id)


def set_status(session: Session, edition: Edition, status: EditionStatus) -> None:
    edition.status = status
    session.commit()


def pushed(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "guid": "cms-1001",
        "url": "https://www.shortlysts.com/posts/rates-hold",
        "title": "The central bank holds rates",
        "body_html": "<p>The bank kept its rate where it was for a third month running.</p>",
        "category": "Economy",
        "published_at": "2025-05-16T06:00:00Z",
    }
    body.update(overrides)
    return body


def post_count(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Post)) or 0


# --- Tokens --------------------------------------------------------------------------------


def test_the_same_new_post_pushed_at_once_is_stored_once(api: TestClient, session: Session) -> None:
    barrier = threading.Barrier(6)

    def push() -> int:
        barrier.wait()
        return int(api.post("/api/v1/posts", json=pushed()).status_code)

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(lambda _: push(), range(6)))

    assert codes == [200, 200, 200, 200, 200, 201]
    assert post_count(session) == 1


def test_a_request_without_a_token_is_refused(client: TestClient) -> None:
    response = client.get("/api/v1/editions")

    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["detail"]


def test_an_unknown_token_is_refused(make_client: Any) -> None:
    stranger = make_client(headers={"authorization": "Bearer nlt_not-a-real-token"})

    response = stranger.get("/api/v1/editions")

    assert response.status_code == 401
    assert response.json() == {"detail": "This API token is unknown or was revoked."}


def test_a_revoked_token_is_refused(api: TestClient, session: Session, now: datetime) -> None:
    token = session.scalars(select(ApiToken)).one()
    revoke_token(session, token.id, now=now)
    session.commit()

    response = api.get("/api/v1/editions")

    assert response.status_code == 401
    assert response.json() == {"detail": "This API token is unknown or was revoked."}


def test_the_public_list_of_lists_still_needs_no_token(
    client: TestClient, daily_list: NewsletterList
) -> None:
    response = client.get("/api/v1/lists")

    assert response.status_code == 200
    assert [entry["slug"] for entry in response.json()] == ["daily"]


# --- Posts ---------------------------------------------------------------------------------


def test_a_new_post_is_stored(api: TestClient, session: Session) -> None:
    response = api.post("/api/v1/posts", json=pushed())

    assert response.status_code == 201
    body = response.json()
    assert body["result"] == "created"
    assert body["guid"] == "cms-1001"
    assert body["title"] == "The central bank holds rates"
    assert post_count(session) == 1


def test_the_same_post_pushed_twice_is_stored_once(api: TestClient, session: Session) -> None:
    first = api.post("/api/v1/posts", json=pushed())

    again = api.post("/api/v1/posts", json=pushed())

    assert again.status_code == 200
    assert again.json()["result"] == "unchanged"
    assert again.json()["id"] == first.json()["id"]
    assert post_count(session) == 1


def test_an_edited_post_is_updated_in_place(api: TestClient, session: Session) -> None:
    first = api.post("/api/v1/posts", json=pushed())

    edited = api.post("/api/v1/posts", json=pushed(title="The central bank cuts rates"))

    assert edited.status_code == 200
    assert edited.json()["result"] == "updated"
    assert post_count(session) == 1
    row = session.get_one(Post, first.json()["id"])
    assert row.title == "The central bank cuts rates"


def test_hostile_html_in_a_pushed_post_is_stripped(api: TestClient, session: Session) -> None:
    hostile = (
        "<p onclick=\"steal()\">Rates held.<script>alert('x')</script></p>"
        '<img src="x" onerror="alert(1)"><a href="javascript:alert(2)">more</a>'
    )

    response = api.post(
        "/api/v1/posts",
        json=pushed(title="<b onmouseover=alert(3)>Rates</b> held", body_html=hostile),
    )

    assert response.status_code == 201
    row = session.get_one(Post, response.json()["id"])
    assert row.title == "Rates held"
    assert "Rates held." in row.body_html
    for marker in ("<script", "alert", "onerror", "onclick", "<img", "javascript:"):
        assert marker not in row.body_html


def test_a_pushed_image_url_with_spaces_is_stored_percent_encoded(
    api: TestClient, session: Session
) -> None:
    image = "https://www.shortlysts.com/images/Rates hold again.jpg"

    response = api.post("/api/v1/posts", json=pushed(image_url=image))

    assert response.status_code == 201
    assert response.json()["image_url"] == (
        "https://www.shortlysts.com/images/Rates%20hold%20again.jpg"
    )


def test_a_pushed_post_with_an_unusable_image_url_is_stored_without_it(
    api: TestClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    response = api.post("/api/v1/posts", json=pushed(image_url="javascript:alert(1)"))

    assert response.status_code == 201
    assert (response.json()["title"], response.json()["image_url"]) == (
        "The central bank holds rates", None,
    )  # fmt: skip
    assert post_count(session) == 1
    assert (
        "post 'cms-1001': image dropped, its URL must be an http(s) URL, got 'javascript:alert(1)'"
    ) in caplog.text


def test_a_post_with_an_unknown_field_is_refused(api: TestClient, session: Session) -> None:
    response = api.post("/api/v1/posts", json=pushed(is_featured=True))

    assert response.status_code == 422
    assert response.json()["detail"].startswith("is_featured: ")
    assert post_count(session) == 0


def test_a_post_without_a_title_is_refused(api: TestClient, session: Session) -> None:
    response = api.post("/api/v1/posts", json=pushed(title="<p> </p>"))

    assert response.status_code == 422
    assert "title: " in response.json()["detail"]
    assert "a post needs a title" in response.json()["detail"]
    assert post_count(session) == 0


def test_a_post_with_a_non_http_url_is_refused(api: TestClient) -> None:
    response = api.post("/api/v1/posts", json=pushed(url="javascript:alert(1)"))

    assert response.status_code == 422
    assert "url: " in response.json()["detail"]


def test_a_post_dated_beyond_the_calendar_is_refused(api: TestClient) -> None:
    response = api.post("/api/v1/posts", json=pushed(published_at="0001-01-01T00:00:00+01:00"))

    assert response.status_code == 422
    assert response.json()["detail"] == "published_at: Value error, the date is out of range"


def test_a_post_url_with_a_nul_character_is_refused(api: TestClient, session: Session) -> None:
    response = api.post("/api/v1/posts", json=pushed(url="https://www.shortlysts.com/a\u0000b"))

    assert response.status_code == 422
    assert "NUL" in response.json()["detail"]
    assert post_count(session) == 0


def test_posts_are_listed_newest_first_a_page_at_a_time(
    api: TestClient, session: Session, now: datetime
) -> None:
    upsert_posts(session, [post(i, now - timedelta(hours=i)) for i in range(5)])
    session.commit()

    response = api.get("/api/v1/posts", params={"per_page": 2, "page": 2})

    assert response.status_code == 200
    body = response.json()
    assert [p["title"] for p in body["items"]] == ["Story number 2", "Story number 3"]
    assert (body["page"], body["per_page"], body["total"]) == (2, 2, 5)


def test_posts_are_searched_by_title(api: TestClient, session: Session, now: datetime) -> None:
    upsert_posts(
        session,
        [post(1, now, title="Storm hits the coast"), post(2, now, title="Markets rally")],
    )
    session.commit()

    response = api.get("/api/v1/posts", params={"q": "STORM"})

    assert [p["title"] for p in response.json()["items"]] == ["Storm hits the coast"]
    assert response.json()["total"] == 1


def test_a_search_with_a_nul_character_is_refused(api: TestClient) -> None:
    # PostgreSQL would refuse it mid-query: it is bad input, not a server error.
    response = api.get("/api/v1/subscribers", params={"q": "ada\x00"})

    assert response.status_code == 422
    assert response.json() == {"detail": "q: Value error, must not contain NUL characters"}


def test_a_page_size_over_the_limit_is_refused(api: TestClient) -> None:
    response = api.get("/api/v1/posts", params={"per_page": 1000})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("per_page: ")


# --- Reading editions ----------------------------------------------------------------------


def test_editions_are_listed_by_list_and_status(
    api: TestClient, session: Session, edition: Edition
) -> None:
    create_list(session, ListSpec(slug="tech", name="Tech", from_address="t@example.com"))
    session.commit()

    scheduled = api.get("/api/v1/editions", params={"list": "daily", "status": "scheduled"})
    drafts = api.get("/api/v1/editions", params={"status": "draft"})
    tech = api.get("/api/v1/editions", params={"list": "tech"})

    assert [e["id"] for e in scheduled.json()["items"]] == [edition.id]
    assert scheduled.json()["items"][0]["list"] == "daily"
    assert drafts.json()["total"] == 0
    assert tech.json()["total"] == 0


def test_editions_of_an_unknown_list_are_not_found(api: TestClient) -> None:
    response = api.get("/api/v1/editions", params={"list": "nope"})

    assert response.status_code == 404
    assert "no list 'nope'" in response.json()["detail"]


def test_an_unknown_edition_status_is_refused(api: TestClient) -> None:
    response = api.get("/api/v1/editions", params={"status": "lost"})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("status: ")


def test_an_edition_shows_its_posts_words_and_progress(
    api: TestClient, edition: Edition, settings: Settings
) -> None:
    response = api.get(f"/api/v1/editions/{edition.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["edition_date"] == "2025-05-16"
    assert body["scheduled_at"] == "2025-05-16T07:00:00Z"
    assert body["subject"] == edition.subject
    assert [p["title"] for p in body["posts"]] == [
        "Story number 0",
        "Story number 1",
        "Story number 2",
    ]
    assert [p["position"] for p in body["posts"]] == [1, 2, 3]
    assert not any(p["pinned"] for p in body["posts"])
    assert body["html_bytes"] == sent_size(edition.html)
    assert body["archive_url"] == f"{settings.base_url}/archive/daily/2025-05-16"
    assert body["progress"]["total"] == 0


def test_an_unknown_edition_is_not_found(api: TestClient) -> None:
    response = api.get("/api/v1/editions/999999")

    assert response.status_code == 404
    assert response.json() == {"detail": "There is no edition 999999."}


def test_an_absurd_edition_id_is_refused_not_a_crash(api: TestClient) -> None:
    response = api.get(f"/api/v1/editions/{2**70}")

    assert response.status_code == 422
    assert response.json()["detail"].startswith("edition_id: ")


def test_the_stored_html_and_text_are_served(api: TestClient, edition: Edition) -> None:
    html = api.get(f"/api/v1/editions/{edition.id}/html")
    text = api.get(f"/api/v1/editions/{edition.id}/text")

    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert html.text == edition.html
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == edition.text
    assert "STORY NUMBER 1" in text.text


def test_the_progress_counts_the_deliveries(
    api: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    start_sending(session, edition.id, now=now)
    session.commit()

    response = api.get(f"/api/v1/editions/{edition.id}/progress")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["total"], body["queued"], body["sent"]) == ("sending", 2, 2, 0)
    assert body["remaining"] == 2


# --- Today's edition -----------------------------------------------------------------------


@pytest.mark.parametrize(("now", "timezone"), AROUND_THE_CLOCK)
def test_todays_edition_is_built_once(
    api: TestClient, session: Session, now: datetime, timezone: str
) -> None:
    create_list(session, ListSpec(slug="daily", name="Shortlysts Daily",
                                  from_address="daily@shortlysts.example.com",
                                  schedule=SEND_AT, timezone=timezone))  # fmt: skip
    upsert_posts(session, [post(1, inside_todays_window(now, timezone))])
    session.commit()

    first = api.post("/api/v1/lists/daily/editions")
    again = api.post("/api/v1/lists/daily/editions")

    assert first.status_code == 201
    assert [p["title"] for p in first.json()["posts"]] == ["Story number 1"]
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


def test_todays_edition_of_an_unknown_list_is_not_found(api: TestClient) -> None:
    response = api.post("/api/v1/lists/nope/editions")

    assert response.status_code == 404
    assert "no list 'nope'" in response.json()["detail"]


# --- Changing an edition -------------------------------------------------------------------


def test_the_editors_words_are_rendered_into_the_email(
    api: TestClient, session: Session, edition: Edition
) -> None:
    response = api.patch(
        f"/api/v1/editions/{edition.id}",
        json={
            "intro": "A quiet morning.",
            "subject": "Rates, storms and more",
            "preheader": "Five minutes",
        },
    )

    assert response.status_code == 200
    assert response.json()["subject"] == "Rates, storms and more"
    assert response.json()["subject_override"] == "Rates, storms and more"
    row = stored(session, edition)
    assert row.subject == "Rates, storms and more"
    assert "A quiet morning." in row.html
    assert "Five minutes" in row.html


def test_posts_are_reordered(api: TestClient, session: Session, edition: Edition) -> None:
    ids = post_ids(api.get(f"/api/v1/editions/{edition.id}").json())

    response = api.patch(f"/api/v1/editions/{edition.id}", json={"order": ids[::-1]})

    assert response.status_code == 200
    assert post_ids(response.json()) == ids[::-1]
    html = stored(session, edition).html
    assert html.index("Story number 2") < html.index("Story number 0")


def test_a_pinned_post_leads(api: TestClient, edition: Edition) -> None:
    ids = post_ids(api.get(f"/api/v1/editions/{edition.id}").json())

    response = api.patch(f"/api/v1/editions/{edition.id}", json={"pinned": [ids[2]]})

    posts = response.json()["posts"]
    assert [p["id"] for p in posts] == [ids[2], ids[0], ids[1]]
    assert [p["pinned"] for p in posts] == [True, False, False]


def test_pins_not_listed_are_removed(api: TestClient, edition: Edition) -> None:
    ids = post_ids(api.get(f"/api/v1/editions/{edition.id}").json())
    api.patch(f"/api/v1/editions/{edition.id}", json={"pinned": [ids[2]]})

    response = api.patch(f"/api/v1/editions/{edition.id}", json={"pinned": []})

    # Unpinned, a post keeps its place: only the pin is gone.
    assert post_ids(response.json()) == [ids[2], ids[0], ids[1]]
    assert not any(p["pinned"] for p in response.json()["posts"])


def test_a_removed_post_leaves_the_email(
    api: TestClient, session: Session, edition: Edition
) -> None:
    ids = post_ids(api.get(f"/api/v1/editions/{edition.id}").json())

    response = api.patch(f"/api/v1/editions/{edition.id}", json={"remove": [ids[1]]})

    assert response.status_code == 200
    assert post_ids(response.json()) == [ids[0], ids[2]]
    assert "Story number 1" not in stored(session, edition).html


def test_a_refused_change_changes_nothing(
    api: TestClient, session: Session, edition: Edition
) -> None:
    ids = post_ids(api.get(f"/api/v1/editions/{edition.id}").json())

    response = api.patch(
        f"/api/v1/editions/{edition.id}",
        json={"remove": [ids[0]], "subject": "New subject", "pinned": [999999]},
    )

    assert response.status_code == 409
    assert response.json() == {"detail": "Post 999999 is not in this edition."}
    row = stored(session, edition)
    assert [item.post_id for item in row.items] == ids
    assert row.subject_override == ""


def test_a_sent_edition_cannot_be_changed(
    api: TestClient, session: Session, edition: Edition
) -> None:
    set_status(session, edition, EditionStatus.SENT)

    response = api.patch(f"/api/v1/editions/{edition.id}", json={"intro": "Too late"})

    assert response.status_code == 409
    assert response.json()["detail"].startswith("This edition is sent: only a draft")


def test_a_subject_on_two_lines_is_refused(api: TestClient, edition: Edition) -> None:
    response = api.patch(
        f"/api/v1/editions/{edition.id}", json={"subject": "Hello\r\nBcc: x@evil.example"}
    )

    assert response.status_code == 422
    assert response.json()["detail"] == "subject: Value error, must be a single line"


def test_a_change_with_an_unknown_field_is_refused(api: TestClient, edition: Edition) -> None:
    response = api.patch(f"/api/v1/editions/{edition.id}", json={"title": "Hello"})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("title: ")


def test_changing_an_unknown_edition_is_not_found(api: TestClient) -> None:
    response = api.patch("/api/v1/editions/999999", json={"intro": "Hello"})

    assert response.status_code == 404


def test_an_edition_is_rendered_again(api: TestClient, session: Session, edition: Edition) -> None:
    edition.html = ""
    session.commit()

    response = api.post(f"/api/v1/editions/{edition.id}/render")

    assert response.status_code == 200
    assert response.json()["html_bytes"] > 0
    assert "Story number 0" in stored(session, edition).html


def test_a_sent_edition_is_not_rendered_again(
    api: TestClient, session: Session, edition: Edition
) -> None:
    set_status(session, edition, EditionStatus.SENT)

    response = api.post(f"/api/v1/editions/{edition.id}/render")

    assert response.status_code == 409


def test_refresh_adds_posts_published_since_the_build(
    api: TestClient, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    # Built an hour early (at 06:00, for 07:00); the app's clock says 07:30.
    built_at = now.replace(hour=6, minute=0)
    upsert_posts(session, [post(1, built_at - timedelta(hours=1))])
    session.commit()
    edition = edition_with_readers(
        session, daily_list, READERS, now=built_at, settings=settings, posts=0
    )
    upsert_posts(session, [post(2, built_at + timedelta(minutes=30))])
    session.commit()

    response = api.post(f"/api/v1/editions/{edition.id}/refresh")

    assert response.status_code == 200
    assert response.json()["added"] == 1
    assert [p["title"] for p in response.json()["edition"]["posts"]] == [
        "Story number 2",
        "Story number 1",
    ]


# --- Sending -------------------------------------------------------------------------------


def test_a_test_copy_goes_to_the_editor(
    api: TestClient, edition: Edition, edition_sender: RecordingEditionSender
) -> None:
    response = api.post(f"/api/v1/editions/{edition.id}/test")

    assert response.status_code == 202
    assert response.json()["message"] == f"A test copy is on its way to {EDITOR_EMAIL}."
    assert edition_sender.tests == [(edition.id, EDITOR_EMAIL)]
    assert edition_sender.sent == []


def test_a_test_copy_goes_to_the_address_given(
    api: TestClient, edition: Edition, edition_sender: RecordingEditionSender
) -> None:
    response = api.post(
        f"/api/v1/editions/{edition.id}/test", json={"address": "proofs@shortlysts.example.com"}
    )

    assert response.status_code == 202
    assert edition_sender.tests == [(edition.id, "proofs@shortlysts.example.com")]


def test_a_test_copy_to_a_bad_address_is_refused(
    api: TestClient, edition: Edition, edition_sender: RecordingEditionSender
) -> None:
    response = api.post(f"/api/v1/editions/{edition.id}/test", json={"address": "not an address"})

    assert response.status_code == 422
    assert "is not a valid email address" in response.json()["detail"]
    assert edition_sender.tests == []


def test_an_edition_without_posts_has_no_test_copy(
    api: TestClient, session: Session, daily_list: NewsletterList, now: datetime,
    settings: Settings, edition_sender: RecordingEditionSender,
) -> None:  # fmt: skip
    skipped = edition_with_readers(
        session, daily_list, READERS, now=now, settings=settings, posts=0
    )

    response = api.post(f"/api/v1/editions/{skipped.id}/test")

    assert response.status_code == 409
    assert "holds no posts" in response.json()["detail"]
    assert edition_sender.tests == []


def test_send_now_hands_the_edition_to_the_workers(
    api: TestClient,
    session: Session,
    edition: Edition,
    edition_sender: RecordingEditionSender,
    now: datetime,
) -> None:
    response = api.post(f"/api/v1/editions/{edition.id}/send")

    assert response.status_code == 202
    assert edition_sender.sent == [edition.id]
    row = stored(session, edition)
    assert row.status == EditionStatus.SCHEDULED
    assert row.scheduled_at is not None
    assert row.scheduled_at == now


def test_a_sent_edition_is_not_sent_again(
    api: TestClient, session: Session, edition: Edition, edition_sender: RecordingEditionSender
) -> None:
    set_status(session, edition, EditionStatus.SENT)

    response = api.post(f"/api/v1/editions/{edition.id}/send")

    assert response.status_code == 409
    assert response.json()["detail"].startswith("This edition is sent")
    assert edition_sender.sent == []


def test_an_edition_is_scheduled_for_a_later_time(
    api: TestClient, session: Session, edition: Edition
) -> None:
    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    local = at.astimezone(timezone(timedelta(hours=1))).isoformat()

    response = api.post(f"/api/v1/editions/{edition.id}/schedule", json={"at": local})

    assert response.status_code == 200
    assert response.json()["status"] == "scheduled"
    assert stored(session, edition).scheduled_at == at


def test_a_time_without_its_timezone_is_refused(api: TestClient, edition: Edition) -> None:
    response = api.post(
        f"/api/v1/editions/{edition.id}/schedule", json={"at": "2099-05-16T07:00:00"}
    )

    assert response.status_code == 422
    assert response.json()["detail"].startswith("at: ")


def test_a_time_beyond_the_calendar_is_refused(api: TestClient, edition: Edition) -> None:
    response = api.post(
        f"/api/v1/editions/{edition.id}/schedule", json={"at": "9999-12-31T23:00:00-05:00"}
    )

    assert response.status_code == 422
    assert response.json()["detail"] == "at: Value error, the time is out of range"


def test_a_time_in_the_past_is_refused(api: TestClient, edition: Edition) -> None:
    response = api.post(
        f"/api/v1/editions/{edition.id}/schedule", json={"at": "2020-05-16T07:00:00+00:00"}
    )

    assert response.status_code == 409
    assert response.json()["detail"].startswith("That time has passed")


def test_a_send_is_paused(
    api: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    start_sending(session, edition.id, now=now)
    session.commit()

    response = api.post(f"/api/v1/editions/{edition.id}/pause")

    assert response.status_code == 200
    assert response.json()["status"] == "paused"
    assert response.json()["progress"]["queued"] == 2


def test_a_draft_cannot_be_paused(api: TestClient, session: Session, edition: Edition) -> None:
    set_status(session, edition, EditionStatus.DRAFT)

    response = api.post(f"/api/v1/editions/{edition.id}/pause")

    assert response.status_code == 409
    assert response.json() == {"detail": "This edition is draft: only a send can pause."}


def test_a_paused_send_resumes_through_the_workers(
    api: TestClient, session: Session, edition: Edition, now: datetime,
    edition_sender: RecordingEditionSender,
) -> None:  # fmt: skip
    start_sending(session, edition.id, now=now)
    set_status(session, edition, EditionStatus.PAUSED)

    response = api.post(f"/api/v1/editions/{edition.id}/resume")

    assert response.status_code == 202
    assert response.json()["status"] == "sending"
    assert edition_sender.sent == [edition.id]


def test_only_a_paused_send_resumes(
    api: TestClient, edition: Edition, edition_sender: RecordingEditionSender
) -> None:
    response = api.post(f"/api/v1/editions/{edition.id}/resume")

    assert response.status_code == 409
    assert response.json() == {"detail": "This edition is scheduled: only a paused one resumes."}
    assert edition_sender.sent == []


def test_a_cancelled_send_skips_the_readers_left(
    api: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    start_sending(session, edition.id, now=now)
    session.commit()

    response = api.post(f"/api/v1/editions/{edition.id}/cancel")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["cancelled_at"] is not None
    assert (body["progress"]["skipped"], body["progress"]["queued"]) == (2, 0)


def test_a_sent_edition_cannot_be_cancelled(
    api: TestClient, session: Session, edition: Edition
) -> None:
    set_status(session, edition, EditionStatus.SENT)

    response = api.post(f"/api/v1/editions/{edition.id}/cancel")

    assert response.status_code == 409
    assert response.json() == {"detail": "This edition is sent: it cannot be cancelled."}


# --- Subscribers ---------------------------------------------------------------------------


@pytest.fixture
def readers(session: Session, daily_list: NewsletterList, now: datetime) -> None:
    """Three confirmed daily readers and one who left."""
    addresses = ["ada@example.com", "bo@example.com", "cy@sample.org", "di@example.com"]
    import_subscribers(session, daily_list, [Signup(a) for a in addresses], now=now, source="t")
    left = session.scalars(select(Subscription).order_by(Subscription.id.desc())).first()
    assert left is not None
    left.status = SubscriptionStatus.UNSUBSCRIBED
    session.commit()


def emails(response: Any) -> list[str]:
    return [s["email"] for s in response.json()["items"]]


@pytest.mark.usefixtures("readers")
def test_subscribers_are_searched_by_address(api: TestClient) -> None:
    response = api.get("/api/v1/subscribers", params={"q": "EXAMPLE.com"})

    assert response.status_code == 200
    assert emails(response) == ["di@example.com", "bo@example.com", "ada@example.com"]
    assert response.json()["items"][1]["subscriptions"][0]["list"] == "daily"


@pytest.mark.usefixtures("readers")
def test_subscribers_are_filtered_by_list_and_status(api: TestClient) -> None:
    response = api.get("/api/v1/subscribers", params={"list": "daily", "status": "unsubscribed"})

    assert emails(response) == ["di@example.com"]
    assert response.json()["items"][0]["subscriptions"][0]["status"] == "unsubscribed"


@pytest.mark.usefixtures("readers")
def test_subscribers_come_a_page_at_a_time(api: TestClient) -> None:
    response = api.get("/api/v1/subscribers", params={"per_page": 3, "page": 2})

    assert emails(response) == ["ada@example.com"]
    assert response.json()["total"] == 4


def test_subscribers_of_an_unknown_list_are_not_found(api: TestClient) -> None:
    response = api.get("/api/v1/subscribers", params={"list": "nope"})

    assert response.status_code == 404


# --- Lists ---------------------------------------------------------------------------------


def test_a_lists_schedule_is_changed(
    api: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    response = api.patch(
        "/api/v1/lists/daily",
        json={
            "schedule": "30 6 * * 1-5",
            "timezone": "Europe/London",
            "requires_approval": True,
            "weekly_day": 4,
        },
    )

    assert response.status_code == 200
    assert response.json()["schedule"] == "30 6 * * 1-5"
    session.expire_all()
    row = session.get_one(NewsletterList, daily_list.id)
    assert (row.schedule, row.timezone, row.requires_approval, row.weekly_day) == (
        "30 6 * * 1-5",
        "Europe/London",
        True,
        4,
    )


def test_a_lists_story_detail_is_changed(
    api: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    response = api.patch("/api/v1/lists/daily", json={"story_detail": "all_sections"})

    assert response.status_code == 200
    assert response.json()["story_detail"] == "all_sections"
    assert response.json()["schedule"] == "0 7 * * *"
    session.expire_all()
    assert session.get_one(NewsletterList, daily_list.id).story_detail == "all_sections"


def test_an_unknown_story_detail_is_refused_naming_the_choices(
    api: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    response = api.patch("/api/v1/lists/daily", json={"story_detail": "everything"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": "story_detail: Input should be 'dek', 'first_section' or 'all_sections'"
    }
    session.expire_all()
    assert session.get_one(NewsletterList, daily_list.id).story_detail == "dek"


def test_a_lists_tracking_is_changed(
    api: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    response = api.patch(
        "/api/v1/lists/daily",
        json={"click_tracking": "individual", "track_opens": True, "utm_tags": False},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["click_tracking"], body["track_opens"], body["utm_tags"]) == (
        "individual", True, False,
    )  # fmt: skip
    assert body["story_detail"] == "dek"
    session.expire_all()
    row = session.get_one(NewsletterList, daily_list.id)
    assert (row.click_tracking, row.track_opens, row.utm_tags) == ("individual", True, False)


def test_a_patch_without_tracking_keeps_it(
    api: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    api.patch("/api/v1/lists/daily", json={"click_tracking": "off", "utm_tags": False})

    response = api.patch("/api/v1/lists/daily", json={"schedule": "0 8 * * *"})

    body = response.json()
    assert (body["click_tracking"], body["track_opens"], body["utm_tags"]) == ("off", False, False)


def test_an_unknown_click_tracking_is_refused_naming_the_choices(
    api: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    response = api.patch("/api/v1/lists/daily", json={"click_tracking": "everyone"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": "click_tracking: Input should be 'off', 'anonymous' or 'individual'"
    }
    session.expire_all()
    assert session.get_one(NewsletterList, daily_list.id).click_tracking == "anonymous"


def test_the_api_document_says_what_each_tracking_choice_means(api: TestClient) -> None:
    patch = api.get("/openapi.json").json()["components"]["schemas"]["ListPatch"]["properties"]

    assert "nobody's clicks are stored" in patch["click_tracking"]["description"]
    assert "each reader's clicks are stored" in patch["click_tracking"]["description"]
    assert "Apple Mail Privacy Protection" in patch["track_opens"]["description"]


def test_a_bad_cron_expression_is_refused_and_nothing_changes(
    api: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    response = api.patch(
        "/api/v1/lists/daily", json={"schedule": "every morning", "requires_approval": True}
    )

    assert response.status_code == 422
    assert "is not a five-field cron expression" in response.json()["detail"]
    session.expire_all()
    row = session.get_one(NewsletterList, daily_list.id)
    assert (row.schedule, row.requires_approval) == ("0 7 * * *", False)


def test_an_unknown_timezone_is_refused(api: TestClient, daily_list: NewsletterList) -> None:
    response = api.patch("/api/v1/lists/daily", json={"timezone": "Mars/Olympus"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": "'Mars/Olympus' is not an IANA timezone name such as Europe/London"
    }


def test_a_weekly_day_out_of_range_is_refused(api: TestClient, daily_list: NewsletterList) -> None:
    response = api.patch("/api/v1/lists/daily", json={"weekly_day": 7})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("weekly_day: ")


def test_changing_an_unknown_list_is_not_found(api: TestClient) -> None:
    response = api.patch("/api/v1/lists/nope", json={"requires_approval": True})

    assert response.status_code == 404
