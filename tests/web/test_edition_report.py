"""The edition report and a list's trend as an editor sees them: the admin pages, the CSV,
and the editor API's JSON, from an edition sent to its readers with clicks set on the rows
the flush writes."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from redis import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import (
    ClickHour,
    Edition,
    EditionEngagement,
    NewsletterList,
    Post,
    TrackedLink,
)
from newsletter.subscriptions.consent import Client
from newsletter.subscriptions.readers import unsubscribe
from newsletter.web import reporting
from tests.factories import edition_with_readers
from tests.returns import hard_bounce, reader_id, sent_edition
from tests.web.conftest import AdminClient, visible_text

READERS = ["ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com"]


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    """Sent to four readers: one bounced, one left by one-click, two clicked; the lead
    story had 1,234 human clicks (a big list's day) and 40 by a scanner."""
    sent = sent_edition(session, daily_list, READERS, now=now, settings=settings)
    hard_bounce(session, sent, "ann@example.com", settings=settings, now=now)
    unsubscribe(
        session, reader_id(session, "bob@example.com"), daily_list.id,
        client=Client(source="one-click"), now=now + timedelta(hours=1),
    )  # fmt: skip
    links = {
        link.position: link
        for link in session.scalars(select(TrackedLink).where(TrackedLink.edition_id == sent.id))
    }
    links[1].human_clicks, links[1].machine_clicks = 1234, 40
    links[2].human_clicks = 66
    session.add(EditionEngagement(edition_id=sent.id, unique_clickers=2))
    session.add(ClickHour(edition_id=sent.id, hour=0, human=1000, machine=40))
    session.add(ClickHour(edition_id=sent.id, hour=2, human=300, machine=0))
    session.commit()
    return sent


def title_at(session: Session, edition: Edition, position: int) -> Post:
    link = session.scalars(
        select(TrackedLink).where(
            TrackedLink.edition_id == edition.id, TrackedLink.position == position
        )
    ).one()
    return session.get_one(Post, link.post_id)


# --- The admin page ----------------------------------------------------------------------------


def test_the_report_shows_an_editor_what_happened_to_the_edition(
    admin: AdminClient, edition: Edition
) -> None:
    response = admin.get(f"/admin/editions/{edition.id}/report")

    assert response.status_code == 200
    text = visible_text(response.text)
    assert "Delivered 4" in text
    assert "Bounced 1 25.0 % · 1 hard, 0 soft" in text
    assert "Unsubscribed 1 25.0 %" in text
    assert "Readers who clicked 2" in text
    assert "Click-through rate 50.0 % of 4 delivered" in text
    assert "Clicks by people 1,300" in text
    assert "Clicks by machines 40" in text
    assert "never counted in the click-through rate" in text
    assert "Opens" not in text  # the edition carried no open pixel


def test_the_stories_are_ranked_by_human_clicks_with_their_place(
    admin: AdminClient, edition: Edition, session: Session
) -> None:
    lead = title_at(session, edition, 1).title

    text = visible_text(admin.get(f"/admin/editions/{edition.id}/report").text)

    assert f"1 1 {lead} 1,234 94.9 % 40" in text


def test_the_chart_is_drawn_on_the_server_and_described(
    admin: AdminClient, edition: Edition
) -> None:
    page = admin.get(f"/admin/editions/{edition.id}/report").text

    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page
    assert "<script" not in page.split("<main", 1)[1].split("</main>", 1)[0]
    assert "Human clicks peaked at 1,000 in hour 1." in page
    assert "<title>Hour 3: 300 human clicks</title>" in page


def test_an_edition_nobody_clicked_yet_says_when_clicks_appear(
    admin: AdminClient, session: Session, daily_list: NewsletterList, now: datetime,
    settings: Settings,
) -> None:  # fmt: skip
    sent = sent_edition(session, daily_list, READERS, now=now, settings=settings)

    text = visible_text(admin.get(f"/admin/editions/{sent.id}/report").text)

    assert "No clicks yet: clicks are counted within a minute or two." in text
    assert "Click-through rate 0.0 %" in text


def test_opens_come_with_the_statement_that_they_are_an_estimate(
    admin: AdminClient, edition: Edition, session: Session
) -> None:
    edition.track_opens = True
    engagement = session.get_one(EditionEngagement, edition.id)
    engagement.human_opens, engagement.machine_opens, engagement.unique_openers = 5, 12, 3
    session.commit()

    text = visible_text(admin.get(f"/admin/editions/{edition.id}/report").text)

    assert "Open rates are an estimate." in text
    assert "Readers who opened (estimate) 3 75.0 %" in text
    assert "Opens by machines 12" in text


def test_the_report_still_shows_when_the_clicks_cannot_be_fetched(
    admin: AdminClient, edition: Edition, monkeypatch: pytest.MonkeyPatch
) -> None:
    def redis_down(*_: object) -> None:
        raise RedisError("connection refused")

    monkeypatch.setattr(reporting, "flush_clicks", redis_down)

    response = admin.get(f"/admin/editions/{edition.id}/report")

    assert response.status_code == 200
    assert "may be a minute or two behind" in visible_text(response.text)
    assert "Clicks by people 1,300" in visible_text(response.text)


def test_the_edition_page_links_to_its_report_once_it_went_out(
    admin: AdminClient, edition: Edition, session: Session, daily_list: NewsletterList,
    now: datetime, settings: Settings,
) -> None:  # fmt: skip
    waiting = edition_with_readers(
        session, daily_list, READERS, now=now + timedelta(days=1), settings=settings
    )

    assert f"/admin/editions/{edition.id}/report" in admin.get(f"/admin/editions/{edition.id}").text
    assert "/report" not in admin.get(f"/admin/editions/{waiting.id}").text


def test_no_report_for_an_edition_that_does_not_exist(admin: AdminClient) -> None:
    assert admin.get("/admin/editions/999/report").status_code == 404
    assert admin.get("/admin/editions/999/report.csv").status_code == 404


def test_a_stranger_is_sent_to_the_login_page(client: TestClient, edition: Edition) -> None:
    response = client.get(f"/admin/editions/{edition.id}/report", follow_redirects=False)

    assert response.status_code == 303
    assert "/admin/login" in response.headers["location"]


# --- CSV -------------------------------------------------------------------------------------


def rows_of(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


def test_the_csv_has_the_summary_then_a_row_per_story(admin: AdminClient, edition: Edition) -> None:
    response = admin.get(f"/admin/editions/{edition.id}/report.csv")

    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = rows_of(response.text)
    summary = dict(row for row in rows[: rows.index([])] if len(row) == 2)
    assert summary["Delivered"] == "4"
    assert summary["Click-through rate (%)"] == "50.0"
    assert summary["Machine clicks (not in the click-through rate)"] == "40"
    stories = rows[rows.index([]) + 1 :]
    assert stories[0] == [
        "Rank", "Position in email", "Story", "URL", "Human clicks", "Machine clicks",
    ]  # fmt: skip
    assert [(r[0], r[1], r[4], r[5]) for r in stories[1:]] == [
        ("1", "1", "1234", "40"), ("2", "2", "66", "0"), ("3", "3", "0", "0"),
    ]  # fmt: skip


@pytest.mark.parametrize("title", ['=HYPERLINK("https://evil.example")', "+1", "-2", "@SUM(A1)"])
def test_a_title_a_spreadsheet_would_run_is_written_as_text(
    admin: AdminClient, edition: Edition, session: Session, title: str
) -> None:
    title_at(session, edition, 1).title = title
    session.commit()

    rows = rows_of(admin.get(f"/admin/editions/{edition.id}/report.csv").text)

    assert ["1", "1", "'" + title] == next(r for r in rows if r[:1] == ["1"])[:3]


# --- The editor API ---------------------------------------------------------------------------


def test_the_api_gives_the_report_as_json(api: TestClient, edition: Edition) -> None:
    response = api.get(f"/api/v1/editions/{edition.id}/report")

    assert response.status_code == 200
    report = response.json()
    assert (report["delivered"], report["bounced_hard"], report["unique_clickers"]) == (4, 1, 2)
    assert report["unsubscribed"] == {"link": 0, "one_click": 1, "email": 0, "total": 1}
    assert report["click_through_rate"] == 0.5
    assert (report["human_clicks"], report["machine_clicks"]) == (1300, 40)
    assert [s["human_clicks"] for s in report["stories"]] == [1234, 66, 0]
    assert len(report["hours"]) == 48
    assert report["opens"] is None


def test_the_api_gives_the_csv(api: TestClient, edition: Edition) -> None:
    response = api.get(f"/api/v1/editions/{edition.id}/report.csv")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")


def test_the_api_answers_404_for_an_edition_that_does_not_exist(api: TestClient) -> None:
    response = api.get("/api/v1/editions/999/report")

    assert response.status_code == 404
    assert response.json() == {"detail": "There is no edition 999."}


def test_the_api_needs_a_token(client: TestClient, edition: Edition) -> None:
    for path in (
        f"/api/v1/editions/{edition.id}/report",
        f"/api/v1/editions/{edition.id}/report.csv",
        "/api/v1/lists/daily/trend",
    ):
        assert client.get(path).status_code == 401


# --- The list's trend -------------------------------------------------------------------------


def test_the_trend_page_shows_each_edition_with_its_rates(
    admin: AdminClient, edition: Edition
) -> None:
    response = admin.get("/admin/lists/daily/trend")

    assert response.status_code == 200
    text = visible_text(response.text)
    assert f"{edition.edition_date.isoformat()} 4 +4 1 50.0 % 25.0 % 0.0 %" in text
    assert "from the consent log" in text
    assert f'href="/admin/editions/{edition.id}/report"' in response.text


def test_the_lists_page_links_to_each_trend(admin: AdminClient, daily_list: NewsletterList) -> None:
    assert 'href="/admin/lists/daily/trend"' in admin.get("/admin/lists").text


def test_a_list_that_sent_nothing_says_so(admin: AdminClient, daily_list: NewsletterList) -> None:
    text = visible_text(admin.get("/admin/lists/daily/trend").text)

    assert "No edition of Shortlysts Daily has gone out yet" in text


def test_no_trend_for_a_list_that_does_not_exist(admin: AdminClient, api: TestClient) -> None:
    assert admin.get("/admin/lists/nope/trend").status_code == 404
    assert api.get("/api/v1/lists/nope/trend").status_code == 404


def test_the_api_gives_the_trend(api: TestClient, edition: Edition) -> None:
    trend = api.get("/api/v1/lists/daily/trend").json()

    assert trend["list"] == "daily"
    assert [(e["delivered"], e["growth"], e["unsubscribed"]) for e in trend["editions"]] == [
        (4, 4, 1)
    ]
    assert trend["editions"][0]["click_through_rate"] == 0.5
