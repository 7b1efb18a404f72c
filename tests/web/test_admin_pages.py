"""The admin pages, in-process, signed in as an editor: what the editor sees and what each
button does to the stored edition. Sending itself is the workers' job (the recording edition
sender stands in for Celery here; tests/browser/test_editor_journey.py uses the real one)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.fanout import pending_batches
from newsletter.delivery.progress import Progress, measure
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.build import ordered_items
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import run_batch
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import (
    ClickTracking,
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    Feed,
    NewsletterList,
    StoryDetail,
    SubscriptionStatus,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.rendering.render import sent_size
from newsletter.subscriptions.service import Signup, subscribe
from tests.factories import edition_with_readers, post
from tests.moments import AROUND_THE_CLOCK, SEND_AT, inside_todays_window
from tests.web.conftest import (
    EDITOR_EMAIL,
    AdminClient,
    RecordingEditionSender,
    error_paragraph,
    visible_text,
)

READERS = ["ada@example.com", "grace@example.com", "edsger@example.com"]


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    """A scheduled edition of three posts (Story number 0, 1, 2) for three readers."""
    return edition_with_readers(session, daily_list, READERS, now=now, settings=settings)


def stored(session: Session, edition_id: int) -> Edition:
    """The edition as the app committed it."""
    session.expire_all()
    found = session.get(Edition, edition_id)
    assert found is not None
    return found


def titles(edition: Edition) -> list[str]:
    return [item.post.title for item in ordered_items(edition)]


def set_status(session: Session, edition: Edition, status: EditionStatus) -> None:
    edition.status = status
    session.commit()


def start(session: Session, edition: Edition, started: datetime) -> None:
    start_sending(session, edition.id, now=started)
    session.commit()


def followed(admin: AdminClient, response: httpx.Response) -> str:
    """The page a form's 303 leads to, with its flash message."""
    assert response.status_code == 303, response.text
    page = admin.get(response.headers["location"])
    assert page.status_code == 200
    return str(page.text)


def flash(page: str) -> str:
    match = re.search(r'<p class="flash"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)) if match else ""


# The dashboard.


def test_dashboard_counts_each_lists_subscribers_by_status(
    admin: AdminClient, session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    for address in ("a@example.com", "b@example.com"):
        subscribe(session, daily_list, Signup(address), now=now, confirmed=True, source="test")
    subscribe(session, daily_list, Signup("c@example.com"), now=now, confirmed=False, source="test")
    left, _ = subscribe(
        session, daily_list, Signup("d@example.com"), now=now, confirmed=True, source="test"
    )
    left.status = SubscriptionStatus.UNSUBSCRIBED
    session.commit()

    text = visible_text(admin.get("/admin").text)

    assert "Shortlysts Daily daily 2 1 1 Prepare today's edition" in text


def test_dashboard_shows_the_next_edition_and_the_recent_send(
    admin: AdminClient, session: Session, edition: Edition, daily_list: NewsletterList
) -> None:
    text = visible_text(admin.get("/admin").text)
    assert f"Fri 16 May 2025 07:00 UTC Shortlysts Daily scheduled {edition.subject}" in text
    assert "No edition has been sent yet." in text

    start(session, edition, datetime.now(UTC))
    text = visible_text(admin.get("/admin").text)

    assert "Nothing scheduled and no drafts waiting." in text
    # Delivered, failed, remaining.
    assert "Shortlysts Daily, 2025-05-16 sending 0 0 3" in text


def test_dashboard_lists_paused_and_failing_feeds_with_their_errors(
    admin: AdminClient, session: Session, now: datetime
) -> None:
    session.add_all([
        Feed(url="https://ok.example.com/feed", name="Fine feed"),
        Feed(url="https://flaky.example.com/feed", name="Flaky feed", consecutive_errors=2,
             last_error="HTTP 503 from flaky.example.com"),
        Feed(url="https://gone.example.com/feed", name="Gone feed", consecutive_errors=8,
             last_error="HTTP 404 from gone.example.com", paused_at=now),
    ])  # fmt: skip
    session.commit()

    text = visible_text(admin.get("/admin").text)

    assert "Gone feed https://gone.example.com/feed paused" in text
    assert "8 HTTP 404 from gone.example.com" in text
    assert "Flaky feed https://flaky.example.com/feed failing 2 HTTP 503 from flaky" in text
    assert "Fine feed" not in text


@pytest.mark.parametrize(("now", "timezone"), AROUND_THE_CLOCK)
def test_prepare_todays_edition_builds_it_and_opens_it(
    admin: AdminClient, session: Session, now: datetime, timezone: str
) -> None:
    create_list(session, ListSpec(slug="daily", name="Shortlysts Daily",
                                  from_address="daily@shortlysts.example.com",
                                  schedule=SEND_AT, timezone=timezone))  # fmt: skip
    published = inside_todays_window(now, timezone)
    upsert_posts(session, [post(1, published, title="Fresh news")])
    session.commit()

    response = admin.post("/admin/lists/daily/today")

    edition = session.scalars(select(Edition)).one()
    assert response.headers["location"] == f"/admin/editions/{edition.id}"
    page = followed(admin, response)
    assert "Fresh news" in visible_text(page)
    assert flash(page).startswith("Today's edition of Shortlysts Daily")


def test_prepare_todays_edition_of_an_unknown_list_is_not_found(admin: AdminClient) -> None:
    response = admin.post("/admin/lists/nope/today")

    assert response.status_code == 404
    assert "There is no list 'nope'." in visible_text(response.text)


# The edition page: what the editor sees.


def test_edition_page_shows_previews_plain_text_and_size(
    admin: AdminClient, edition: Edition
) -> None:
    page = admin.get(f"/admin/editions/{edition.id}").text
    text = visible_text(page)

    frames = re.findall(r'<iframe class="(\w+)" title="[^"]+" src="([^"]+)"', page)
    preview = f"/admin/editions/{edition.id}/preview"
    assert frames == [("desktop", preview), ("phone", preview)]
    assert re.search(
        r'<pre class="text"[^>]*>.*1\. STORY NUMBER 0.*reader@example\.com.*</pre>', page, re.S
    )
    size = sent_size(edition.html)
    assert f"HTML size as sent: {size:,} bytes of Gmail's 104,448-byte limit" in text
    assert "Over the limit" not in text
    assert "scheduled" in text
    assert titles(edition) == ["Story number 0", "Story number 1", "Story number 2"]
    assert re.search(r"1 Story number 0 .* 2 Story number 1 .* 3 Story number 2", text)


def test_edition_page_warns_when_the_email_is_over_gmails_clipping_size(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    edition.html += "<p>" + "x" * 110_000 + "</p>"
    session.commit()

    text = visible_text(admin.get(f"/admin/editions/{edition.id}").text)

    assert "Over the limit: Gmail clips this email" in text


def test_a_skipped_edition_says_why_and_has_nothing_to_test(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    edition.status, edition.skip_reason = EditionStatus.SKIPPED, "no new posts since yesterday"
    edition.html = edition.text = ""
    session.commit()

    text = visible_text(admin.get(f"/admin/editions/{edition.id}").text)
    response = admin.post(f"/admin/editions/{edition.id}/test")

    assert "no new posts since yesterday" in text
    assert "Preview" not in text
    assert "Refresh posts" in text
    assert response.status_code == 409
    assert error_paragraph(response.text) == (
        "This edition is skipped and has no email to test: no new posts since yesterday."
    )


def test_preview_is_the_email_for_a_sample_reader_and_framable_by_the_admin(
    admin: AdminClient, edition: Edition
) -> None:
    response = admin.get(f"/admin/editions/{edition.id}/preview")

    assert response.status_code == 200
    assert "Story number 1" in response.text
    assert "__NL_" not in response.text
    assert "https://news.example.com/unsubscribe/sample-reader" in response.text
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp
    assert "style-src 'unsafe-inline'" in csp
    assert "img-src https:" in csp
    assert "script-src" not in csp  # default-src 'none': the email runs no script


def test_the_page_of_an_unknown_edition_is_not_found(admin: AdminClient) -> None:
    response = admin.get("/admin/editions/999999")

    assert response.status_code == 404
    assert "There is no edition 999999." in visible_text(response.text)


def test_a_button_on_an_unknown_edition_is_not_found(admin: AdminClient) -> None:
    response = admin.post("/admin/editions/999999/pause")

    assert response.status_code == 404
    assert "There is no edition 999999." in visible_text(response.text)


# The edition page: changing what the edition holds.


def test_remove_takes_the_post_out_of_the_edition_and_its_email(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    removed = ordered_items(edition)[1]

    page = followed(
        admin, admin.post(f"/admin/editions/{edition.id}/posts/{removed.post_id}/remove")
    )

    assert flash(page) == "Removed “Story number 1” from this edition."
    after = stored(session, edition.id)
    assert titles(after) == ["Story number 0", "Story number 2"]
    assert "Story number 1" not in after.html
    assert "STORY NUMBER 1" not in after.text  # the plain text shouts its headlines


def test_the_last_post_cannot_be_removed(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    items = ordered_items(edition)
    for item in items[1:]:
        admin.post(f"/admin/editions/{edition.id}/posts/{item.post_id}/remove")

    response = admin.post(f"/admin/editions/{edition.id}/posts/{items[0].post_id}/remove")

    assert response.status_code == 409
    assert error_paragraph(response.text).startswith("This is the edition's last post")
    assert titles(stored(session, edition.id)) == ["Story number 0"]


def test_move_down_and_up_reorder_the_email(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    first = ordered_items(edition)[0]

    followed(admin, admin.post(f"/admin/editions/{edition.id}/posts/{first.post_id}/move-down"))

    after = stored(session, edition.id)
    assert titles(after) == ["Story number 1", "Story number 0", "Story number 2"]
    assert after.html.index("Story number 1") < after.html.index("Story number 0")

    followed(admin, admin.post(f"/admin/editions/{edition.id}/posts/{first.post_id}/move-up"))
    assert titles(stored(session, edition.id))[0] == "Story number 0"


def test_pin_puts_a_post_first_and_unpin_releases_it(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    last = ordered_items(edition)[2]

    page = followed(admin, admin.post(f"/admin/editions/{edition.id}/posts/{last.post_id}/pin"))

    assert flash(page) == "Pinned “Story number 2”."
    assert "Story number 2 pinned" in visible_text(page)
    assert titles(stored(session, edition.id))[0] == "Story number 2"
    followed(admin, admin.post(f"/admin/editions/{edition.id}/posts/{last.post_id}/unpin"))
    assert not any(item.pinned for item in stored(session, edition.id).items)


def test_a_post_not_in_the_edition_gets_a_clear_error(admin: AdminClient, edition: Edition) -> None:
    response = admin.post(f"/admin/editions/{edition.id}/posts/999999/pin")

    assert response.status_code == 409
    assert error_paragraph(response.text) == "Post 999999 is not in this edition."


def test_an_unknown_post_action_is_refused_with_a_message(
    admin: AdminClient, edition: Edition
) -> None:
    item = ordered_items(edition)[0]

    response = admin.post(f"/admin/editions/{edition.id}/posts/{item.post_id}/promote")

    assert response.status_code == 400
    assert "action" in error_paragraph(response.text)


def test_intro_subject_and_preheader_are_stored_and_rendered(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    followed(admin, admin.post(f"/admin/editions/{edition.id}/edit", {
        "intro": "A quiet day, but read the second story.",
        "subject": "Your Friday briefing",
        "preheader": "Three stories worth your coffee",
    }))  # fmt: skip

    after = stored(session, edition.id)
    assert after.subject == "Your Friday briefing"
    assert after.preheader == "Three stories worth your coffee"
    assert "A quiet day, but read the second story." in after.html
    assert "A quiet day, but read the second story." in after.text
    assert "Three stories worth your coffee" in after.html

    followed(admin, admin.post(f"/admin/editions/{edition.id}/edit", {"subject": ""}))
    assert stored(session, edition.id).subject != "Your Friday briefing"


def test_a_too_long_subject_is_refused_and_the_form_keeps_what_was_typed(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    subject = "S" * 301

    response = admin.post(f"/admin/editions/{edition.id}/edit", {"subject": subject})

    assert response.status_code == 409
    assert error_paragraph(response.text) == "The subject is 301 characters; the limit is 300."
    assert f'value="{subject}"' in response.text
    assert stored(session, edition.id).subject == edition.subject


def test_a_sent_edition_can_no_longer_be_changed(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    set_status(session, edition, EditionStatus.SENT)

    response = admin.post(f"/admin/editions/{edition.id}/edit", {"intro": "Too late"})

    assert response.status_code == 409
    assert error_paragraph(response.text) == (
        "This edition is sent: only a draft or a scheduled edition can be changed."
    )
    assert "Remove" not in visible_text(response.text)


def test_refresh_posts_adds_nothing_when_nothing_new_was_published(
    admin: AdminClient, edition: Edition
) -> None:
    page = followed(admin, admin.post(f"/admin/editions/{edition.id}/refresh"))

    assert flash(page) == "No new posts since this edition was built."


def test_rerender_renders_the_email_again(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    edition.html = "stale"
    session.commit()

    page = followed(admin, admin.post(f"/admin/editions/{edition.id}/render"))

    assert flash(page) == "The email is rendered again from its posts."
    assert "Story number 0" in stored(session, edition.id).html


# The edition page: testing, sending, scheduling, pausing.


def test_send_a_test_goes_to_the_signed_in_editor(
    admin: AdminClient, edition: Edition, edition_sender: RecordingEditionSender
) -> None:
    page = followed(admin, admin.post(f"/admin/editions/{edition.id}/test"))

    assert edition_sender.tests == [(edition.id, EDITOR_EMAIL)]
    assert flash(page) == f"A test copy is on its way to {EDITOR_EMAIL}."


def test_send_now_approves_the_edition_and_hands_it_to_the_workers(
    admin: AdminClient, session: Session, edition: Edition, edition_sender: RecordingEditionSender,
    now: datetime,
) -> None:  # fmt: skip
    set_status(session, edition, EditionStatus.DRAFT)

    page = followed(admin, admin.post(f"/admin/editions/{edition.id}/send"))

    assert edition_sender.sent == [edition.id]
    after = stored(session, edition.id)
    assert after.status == EditionStatus.SCHEDULED
    assert after.scheduled_at is not None
    assert after.scheduled_at == now
    # The request only approves: the workers create the deliveries.
    assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert flash(page).startswith("Sending has started")
    assert 'id="progress"' in page


def test_send_now_of_a_sent_edition_is_refused(
    admin: AdminClient, session: Session, edition: Edition, edition_sender: RecordingEditionSender
) -> None:
    set_status(session, edition, EditionStatus.SENT)

    response = admin.post(f"/admin/editions/{edition.id}/send")

    assert response.status_code == 409
    assert "This edition is sent" in error_paragraph(response.text)
    assert edition_sender.sent == []


def test_schedule_at_reads_the_time_on_the_lists_clock(
    admin: AdminClient, session: Session, edition: Edition, daily_list: NewsletterList
) -> None:
    daily_list.timezone = "Europe/London"
    session.commit()
    year = datetime.now(UTC).year + 1

    page = followed(
        admin, admin.post(f"/admin/editions/{edition.id}/schedule", {"at": f"{year}-07-01T09:15"})
    )

    after = stored(session, edition.id)
    assert after.status == EditionStatus.SCHEDULED
    assert after.scheduled_at == datetime(year, 7, 1, 8, 15, tzinfo=UTC)  # BST is UTC+1
    assert flash(page) == f"Scheduled for {datetime(year, 7, 1):%a} 01 Jul {year} 09:15 BST."


def test_schedule_at_a_time_that_is_not_one_is_refused(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    response = admin.post(f"/admin/editions/{edition.id}/schedule", {"at": "next tuesday"})

    assert response.status_code == 400
    assert error_paragraph(response.text).startswith("'next tuesday' is not a date and time")
    assert stored(session, edition.id).scheduled_at == edition.scheduled_at


def test_schedule_at_the_end_of_the_calendar_is_refused(
    admin: AdminClient, session: Session, edition: Edition, daily_list: NewsletterList
) -> None:
    daily_list.timezone = "America/New_York"
    session.commit()

    response = admin.post(f"/admin/editions/{edition.id}/schedule", {"at": "9999-12-31T23:59"})

    assert response.status_code == 400
    assert error_paragraph(response.text) == "'9999-12-31T23:59' is too far from today to schedule."


def test_schedule_in_the_past_is_refused(admin: AdminClient, edition: Edition) -> None:
    response = admin.post(f"/admin/editions/{edition.id}/schedule", {"at": "2020-01-01T07:00"})

    assert response.status_code == 409
    assert error_paragraph(response.text) == (
        "That time has passed: choose a later one, or send it now."
    )


def test_pausing_a_draft_says_why_it_cannot(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    set_status(session, edition, EditionStatus.DRAFT)

    response = admin.post(f"/admin/editions/{edition.id}/pause")

    assert response.status_code == 409
    assert error_paragraph(response.text) == "This edition is draft: only a send can pause."
    assert stored(session, edition.id).status == EditionStatus.DRAFT


def test_pause_then_resume_a_send(
    admin: AdminClient, session: Session, edition: Edition, edition_sender: RecordingEditionSender
) -> None:
    start(session, edition, datetime.now(UTC))

    page = followed(admin, admin.post(f"/admin/editions/{edition.id}/pause"))
    assert stored(session, edition.id).status == EditionStatus.PAUSED
    assert flash(page).startswith("Paused")
    assert edition_sender.sent == []

    page = followed(admin, admin.post(f"/admin/editions/{edition.id}/resume"))
    assert stored(session, edition.id).status == EditionStatus.SENDING
    assert edition_sender.sent == [edition.id]
    assert flash(page).startswith("Resumed")


def test_resuming_a_send_that_is_not_paused_is_refused(
    admin: AdminClient, session: Session, edition: Edition, edition_sender: RecordingEditionSender
) -> None:
    start(session, edition, datetime.now(UTC))

    response = admin.post(f"/admin/editions/{edition.id}/resume")

    assert response.status_code == 409
    assert error_paragraph(response.text) == "This edition is sending: only a paused one resumes."
    assert edition_sender.sent == []


def test_cancel_a_send_skips_the_readers_not_yet_sent_to(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    start(session, edition, datetime.now(UTC))

    page = followed(admin, admin.post(f"/admin/editions/{edition.id}/cancel"))

    assert flash(page) == "Cancelled: 3 readers not yet sent to will not get it."
    assert stored(session, edition.id).status == EditionStatus.CANCELLED
    assert set(session.scalars(select(Delivery.status))) == {"skipped"}


# Progress.


def test_progress_json_counts_a_send_under_way(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    start(session, edition, now - timedelta(seconds=10))
    first = pending_batches(session, edition.id, batch_size=2)[0]
    run_batch(session, first, MemoryTransport(), settings, clock=lambda: now)

    response = admin.get(f"/admin/editions/{edition.id}/progress")

    assert response.status_code == 200
    state = response.json()
    assert {k: state[k] for k in ("status", "total", "sent", "failed", "remaining")} == {
        "status": "sending", "total": 3, "sent": 2, "failed": 0, "remaining": 1,
    }  # fmt: skip
    assert state["percent"] == 66.6
    assert 0.15 < state["rate_per_s"] <= 0.2  # 2 messages in ~10 s
    assert 5 <= state["eta_s"] <= 7
    page = visible_text(admin.get(f"/admin/editions/{edition.id}").text)
    assert (
        "66.6% done · sending Sent 2 Maybe twice 0 Failed 0 Uncertain 0 Skipped 0 Remaining 1 "
        "Total 3" in page
    )


def test_progress_of_a_finished_send_is_100_percent(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings
) -> None:
    start(session, edition, datetime.now(UTC))
    for batch in pending_batches(session, edition.id, batch_size=50):
        run_batch(session, batch, MemoryTransport(), settings, clock=lambda: datetime.now(UTC))

    state = admin.get(f"/admin/editions/{edition.id}/progress").json()

    assert (state["status"], state["sent"], state["remaining"], state["percent"]) == (
        "sent", 3, 0, 100.0,
    )  # fmt: skip
    assert state["eta_s"] is None


def test_progress_of_an_unknown_edition_is_a_json_404(admin: AdminClient) -> None:
    response = admin.get("/admin/editions/999999/progress")

    assert response.status_code == 404
    assert response.json() == {"detail": "There is no edition 999999."}


def measured(
    status: str, sent: int, queued: int, failed: int = 0, **times: datetime | None
) -> Progress:
    counts = {DeliveryStatus.SENT: sent, DeliveryStatus.QUEUED: queued,
              DeliveryStatus.FAILED: failed}  # fmt: skip
    return measure(1, EditionStatus(status), counts, **times)  # type: ignore[arg-type]


START = datetime(2025, 5, 16, 7, 0, tzinfo=UTC)


def test_measure_gives_the_rate_since_sending_started_and_the_time_left() -> None:
    state = measured("sending", sent=300, queued=900, started=START, finished=None,
                    now=START + timedelta(seconds=60))  # fmt: skip

    assert (state.percent, state.rate_per_s, state.eta_s) == (25.0, 5.0, 180)


def test_measure_rounds_down_so_100_percent_means_done() -> None:
    state = measured("sending", sent=9999, queued=1, started=START, finished=None,
                    now=START + timedelta(seconds=100))  # fmt: skip

    assert state.percent == 99.9


def test_measure_a_finished_send_uses_its_own_duration_and_has_no_eta() -> None:
    state = measured(
        "sent",
        sent=90,
        queued=0,
        failed=10,
        started=START,
        finished=START + timedelta(seconds=30),
        now=START + timedelta(hours=5),
    )

    assert (state.percent, state.rate_per_s, state.eta_s) == (100.0, 3.0, None)


def test_measure_a_paused_send_has_no_eta() -> None:
    state = measured("paused", sent=10, queued=10, started=START, finished=None,
                    now=START + timedelta(seconds=10))  # fmt: skip

    assert state.eta_s is None


# The tables.


def test_posts_search_is_case_insensitive_and_newest_first(
    admin: AdminClient, session: Session, now: datetime
) -> None:
    upsert_posts(session, [
        post(1, now - timedelta(hours=3), title="Rain in Spain"),
        post(2, now - timedelta(hours=2), title="Sunny SPAIN"),
        post(3, now - timedelta(hours=1), title="Snow in Norway"),
    ])  # fmt: skip
    session.commit()

    text = visible_text(admin.get("/admin/posts", params={"q": "spain"}).text)

    assert "2 posts · page 1 of 1" in text
    assert text.index("Sunny SPAIN") < text.index("Rain in Spain")
    assert "Norway" not in text


def test_posts_are_paginated_by_50(admin: AdminClient, session: Session, now: datetime) -> None:
    upsert_posts(session, [post(i, now - timedelta(minutes=i)) for i in range(60)])
    session.commit()

    first = admin.get("/admin/posts").text
    assert "60 posts · page 1 of 2" in visible_text(first)
    assert visible_text(first).count("Story number") == 50
    assert 'href="/admin/posts?page=2"' in first
    assert "Previous" not in visible_text(first)

    second = visible_text(admin.get("/admin/posts", params={"page": 2}).text)
    assert second.count("Story number") == 10
    assert "Story number 59" in second  # the oldest, last
    assert "Previous" in second
    assert "Next" not in second


def test_a_page_number_that_is_not_one_is_refused(admin: AdminClient) -> None:
    response = admin.get("/admin/posts", params={"page": "two"})

    assert response.status_code == 400
    assert "page" in error_paragraph(response.text)


def test_subscribers_filter_by_status_and_search_by_address(
    admin: AdminClient, session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    subscribe(session, daily_list, Signup("ada@example.com"), now=now, confirmed=True,
              source="test")  # fmt: skip
    subscribe(
        session, daily_list, Signup("alan@example.org"), now=now, confirmed=False, source="test"
    )
    subscribe(
        session, daily_list, Signup("grace@example.com"), now=now, confirmed=False, source="test"
    )
    session.commit()

    pending = visible_text(admin.get("/admin/subscribers", params={"status": "pending"}).text)
    assert "2 subscribers" in pending
    assert "alan@example.org" in pending
    assert "grace@example.com" in pending
    assert "ada@example.com" not in pending
    assert "Shortlysts Daily: pending daily" in pending

    both = visible_text(
        admin.get("/admin/subscribers", params={"q": "EXAMPLE.ORG", "status": ""}).text
    )
    assert "1 subscriber ·" in both
    assert "alan@example.org" in both


def test_an_unknown_subscriber_status_is_refused(admin: AdminClient) -> None:
    response = admin.get("/admin/subscribers", params={"status": "gone"})

    assert response.status_code == 400
    assert "status" in error_paragraph(response.text)


def test_editions_of_one_list(admin: AdminClient, session: Session, edition: Edition) -> None:
    text = visible_text(admin.get("/admin/editions", params={"list": "daily"}).text)

    assert f"2025-05-16 Shortlysts Daily scheduled {edition.subject}" in text
    missing = admin.get("/admin/editions", params={"list": "nope"})
    assert missing.status_code == 404


# Lists.


def test_lists_page_shows_the_schedule_and_the_next_run(
    admin: AdminClient, daily_list: NewsletterList
) -> None:
    text = visible_text(admin.get("/admin/lists").text)

    assert "Schedule 0 7 * * * in UTC · weekly edition on Sunday" in text
    assert re.search(r"Next run: \w{3} \d\d \w{3} \d{4} 07:00 UTC", text)


def test_a_list_schedule_is_saved(
    admin: AdminClient, session: Session, daily_list: NewsletterList
) -> None:
    page = followed(admin, admin.post("/admin/lists/daily", {
        "schedule": "30  6 * * 1-5", "timezone": "Europe/London", "weekly_day": "4",
        "requires_approval": "true",
    }))  # fmt: skip

    session.expire_all()
    saved = session.get(NewsletterList, daily_list.id)
    assert saved is not None
    assert (saved.schedule, saved.timezone, saved.weekly_day, saved.requires_approval) == (
        "30 6 * * 1-5", "Europe/London", 4, True,
    )  # fmt: skip
    assert flash(page) == "Saved the settings of Shortlysts Daily."
    assert re.search(r"Next run: \w{3} \d\d \w{3} \d{4} 06:30 (GMT|BST)", visible_text(page))


def test_a_lists_story_detail_is_chosen_and_shown(
    admin: AdminClient, session: Session, daily_list: NewsletterList
) -> None:
    page = followed(admin, admin.post("/admin/lists/daily", {
        "schedule": "0 7 * * *", "timezone": "UTC", "story_detail": "first_section",
    }))  # fmt: skip

    session.refresh(daily_list)
    assert daily_list.story_detail == StoryDetail.FIRST_SECTION
    assert "stories show the dek and the first section" in visible_text(page)
    assert re.search(r'<option value="first_section" selected>', page)


def test_the_lists_page_offers_each_story_detail(
    admin: AdminClient, daily_list: NewsletterList
) -> None:
    page = admin.get("/admin/lists").text
    select = re.search(r'<select [^>]*name="story_detail".*?</select>', page, re.S)
    assert select is not None

    options = re.findall(r'<option value="(\w+)"( selected)?>([^<]+)</option>', select[0])
    assert [(value, label) for value, _, label in options] == [
        ("dek", "The dek and opening paragraph"),
        ("first_section", "The dek and the first section"),
        ("all_sections", "The dek and every section"),
    ]
    assert ("dek", " selected") in [(value, chosen) for value, chosen, _ in options]


@pytest.mark.parametrize(
    ("field", "choices", "kept"),
    [
        ("story_detail", "'dek', 'first_section' or 'all_sections'", StoryDetail.DEK),
        ("click_tracking", "'off', 'anonymous' or 'individual'", ClickTracking.ANONYMOUS),
    ],
)
def test_an_unknown_choice_is_refused_and_nothing_changes(
    admin: AdminClient, session: Session, daily_list: NewsletterList, field: str, choices: str,
    kept: str,
) -> None:  # fmt: skip
    response = admin.post("/admin/lists/daily", {
        "schedule": "30 6 * * *", "timezone": "UTC", field: "everything",
    })  # fmt: skip

    assert response.status_code == 400
    assert error_paragraph(response.text) == f"{field}: Input should be {choices}"
    session.refresh(daily_list)
    assert (daily_list.schedule, getattr(daily_list, field)) == ("0 7 * * *", kept)


def test_a_lists_tracking_is_chosen_shown_and_kept_by_a_form_without_it(
    admin: AdminClient, session: Session, daily_list: NewsletterList
) -> None:
    page = followed(admin, admin.post("/admin/lists/daily", {
        "schedule": "0 7 * * *", "timezone": "UTC", "click_tracking": "individual",
        "track_opens": "true", "utm_tags": "false",
    }))  # fmt: skip

    session.refresh(daily_list)
    assert (daily_list.click_tracking, daily_list.track_opens, daily_list.utm_tags) == (
        ClickTracking.INDIVIDUAL, True, False,
    )  # fmt: skip
    text = visible_text(page)
    assert "Clicks: individual (each reader's clicks are stored" in text
    assert "opens counted · UTM tags off" in " ".join(text.split())
    assert re.search(r'<option value="individual" selected>Individual</option>', page)
    assert "Apple Mail Privacy Protection" in text
    assert "Anonymous: clicks are counted per link; nobody's clicks are stored" in text

    followed(admin, admin.post("/admin/lists/daily", {"schedule": "0 8 * * *", "timezone": "UTC"}))
    session.refresh(daily_list)
    assert (daily_list.schedule, daily_list.click_tracking, daily_list.track_opens) == (
        "0 8 * * *", ClickTracking.INDIVIDUAL, True,
    )  # fmt: skip
    assert daily_list.utm_tags is False


def test_a_bad_cron_expression_is_refused_and_the_form_shown_again(
    admin: AdminClient, session: Session, daily_list: NewsletterList
) -> None:
    response = admin.post("/admin/lists/daily", {"schedule": "every morning", "timezone": "UTC"})

    assert response.status_code == 400
    assert error_paragraph(response.text).startswith(
        "'every morning' is not a five-field cron expression"
    )
    assert 'value="every morning"' in response.text
    session.refresh(daily_list)
    assert daily_list.schedule == "0 7 * * *"


def test_an_unknown_timezone_is_refused(admin: AdminClient, daily_list: NewsletterList) -> None:
    response = admin.post("/admin/lists/daily", {"schedule": "0 7 * * *", "timezone": "Mars/Base"})

    assert response.status_code == 400
    assert error_paragraph(response.text) == (
        "'Mars/Base' is not an IANA timezone name such as Europe/London."
    )


# The script and the login.


def test_the_admin_script_is_served_from_this_site(admin: AdminClient) -> None:
    response = admin.get("/admin/static/admin.js")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert 'getAttribute("data-url")' in response.text


def test_admin_pages_need_a_signed_in_editor(client: TestClient, edition: Edition) -> None:
    response = client.get(f"/admin/editions/{edition.id}", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/login?next=/admin/editions/{edition.id}"
