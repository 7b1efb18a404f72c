"""What operators and browsers rely on: health, Prometheus metrics and security headers."""

from __future__ import annotations

import gc
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.cli.serve import uvicorn_config
from newsletter.config import Settings
from newsletter.delivery.fanout import pending_batches
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import run_batch
from newsletter.inbound import intake
from newsletter.models import EditionEngagement, NewsletterList, Subscription, TrackedLink
from newsletter.subscriptions.service import Signup, subscribe
from newsletter.subscriptions.tokens import (
    PREFERENCES,
    UNSUBSCRIBE,
    make_confirm_token,
    make_token,
)
from newsletter.web.app import served_app
from tests.factories import edition_with_readers, key_of
from tests.moments import TEST_NOW
from tests.returns import complaint, hard_bounce, sender_refusal, sent_edition
from tests.web.conftest import AppFactory, RecordingNotifier, RefusingTransport

SECURITY_HEADERS = {
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def metric(client: TestClient, name: str, **labels: str) -> float:
    return samples(client)[(name, tuple(sorted(labels.items())))]


def test_healthz_reports_the_database(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok", "redis": "not used"}


def test_healthz_reports_an_unreachable_database(make_client: AppFactory) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    client = make_client(database_url="postgresql+psycopg://u:p@127.0.0.1:1/newsletter")

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable", "redis": "not used"}


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    for name in (
        "newsletter_signups_total",
        "newsletter_confirmations_total",
        "newsletter_unsubscribes_total",
    ):
        assert re.search(rf"^# TYPE {name.removesuffix('_total')}(_total)? counter$", text, re.M)
        assert f"{name} 0.0" in text
    assert 'newsletter_messages_total{status="sent"} 0.0' in text
    assert 'newsletter_messages_total{status="failed"} 0.0' in text


def test_metrics_follow_signups_confirmations_and_unsubscribes(
    client: TestClient,
    session: Session,
    settings: Settings,
    lists: list[NewsletterList],
    notifier: RecordingNotifier,
) -> None:
    for address in ("ann@example.com", "bob@example.com"):
        assert (
            client.post(
                "/subscribe", data={"email": address, "lists": ["daily", "tech"]}
            ).status_code
            == 200
        )
    assert metric(client, "newsletter_signups_total") == 4  # one per list asked for

    first = notifier.of_kind("confirm")[0]
    token = make_confirm_token(
        settings.secret_key,
        first.subscriber_id,
        first.list_ids,
        key_of(first.subscriber_id),
        now=TEST_NOW,
    )
    assert client.post(f"/confirm/{token}").status_code == 200
    assert metric(client, "newsletter_confirmations_total") == 2
    assert metric(client, "newsletter_subscriptions", status="confirmed") == 2
    assert metric(client, "newsletter_subscriptions", status="pending") == 2

    leave = make_token(
        settings.secret_key,
        UNSUBSCRIBE,
        first.subscriber_id,
        lists[0].id,
        key_of(first.subscriber_id),
    )
    one_click = {"content-type": "application/x-www-form-urlencoded"}
    client.post(f"/unsubscribe/{leave}", content=b"List-Unsubscribe=One-Click", headers=one_click)
    client.post(f"/unsubscribe/{leave}", content=b"List-Unsubscribe=One-Click", headers=one_click)

    after = samples(client)
    assert after[("newsletter_unsubscribes_total", ())] == 1
    assert after[("newsletter_signups_total", ())] == 4
    assert after[("newsletter_confirmations_total", ())] == 2
    assert after[("newsletter_subscriptions", (("status", "unsubscribed"),))] == 1


def test_metrics_count_messages_sent_and_failed(
    client: TestClient,
    session: Session,
    settings: Settings,
    daily_list: NewsletterList,
    now: datetime,
) -> None:
    readers = ["ann@example.com", "bob@example.com", "cat@example.com"]
    edition = edition_with_readers(session, daily_list, readers, now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    transport = RefusingTransport(refused="bob@example.com")
    for batch in pending_batches(session, edition.id, settings.batch_size):
        run_batch(session, batch, transport, settings, clock=lambda: datetime.now(UTC))

    assert metric(client, "newsletter_messages_total", status="sent") == 2
    assert metric(client, "newsletter_messages_total", status="failed") == 1


def test_metrics_show_each_lists_30_day_bounce_and_complaint_rates(
    client: TestClient, session: Session, settings: Settings, daily_list: NewsletterList,
    now: datetime,
) -> None:  # fmt: skip
    readers = ["ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com"]
    edition = sent_edition(session, daily_list, readers, now=now, settings=settings)
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)
    complaint(session, edition, "bob@example.com", settings=settings, now=now)

    rates = [
        metric(client, "newsletter_list_bounce_rate_30d", list="daily", category="hard"),
        metric(client, "newsletter_list_bounce_rate_30d", list="daily", category="soft"),
        metric(client, "newsletter_list_complaint_rate_30d", list="daily"),
    ]

    assert rates == [0.25, 0, 0.25]


def test_metrics_count_mail_events_by_list_kind_and_category(
    client: TestClient, session: Session, settings: Settings, daily_list: NewsletterList,
    now: datetime,
) -> None:  # fmt: skip
    edition = sent_edition(session, daily_list, ["ann@example.com"], now=now, settings=settings)
    sender_refusal(session, edition, "ann@example.com", settings=settings, now=now)
    sender_refusal(session, edition, "ann@example.com", settings=settings, now=now)

    labels = (("category", "sender"), ("kind", "bounce"), ("list", "daily"))
    assert samples(client)[("newsletter_mail_events_30d", labels)] == 2


def test_metrics_count_blocked_readers_and_inbound_messages_by_status(
    client: TestClient, session: Session, settings: Settings, daily_list: NewsletterList,
    now: datetime,
) -> None:  # fmt: skip
    edition = sent_edition(session, daily_list, ["ann@example.com"], now=now, settings=settings)
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)
    intake.store(session, b"Subject: a bounce not yet read\n\nbody", source="smtp", now=now)
    session.commit()

    found = samples(client)

    assert found[("newsletter_blocked_readers", ())] == 1
    assert [found[("newsletter_inbound_messages", (("status", s),))] for s in
            ("received", "processed", "failed")] == [1, 0, 0]  # fmt: skip


def test_metrics_name_no_reader(
    client: TestClient, session: Session, settings: Settings, daily_list: NewsletterList,
    now: datetime,
) -> None:  # fmt: skip
    edition = sent_edition(session, daily_list, ["ann@example.com"], now=now, settings=settings)
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)

    assert "example.com" not in client.get("/metrics").text


def test_metrics_total_the_clicks_and_opens_of_every_edition_and_nothing_finer(
    client: TestClient, session: Session, settings: Settings, daily_list: NewsletterList,
    now: datetime,
) -> None:  # fmt: skip
    assert [metric(client, name, by=by) for name in ("newsletter_link_clicks_total",
            "newsletter_opens_total") for by in ("person", "machine")] == [0, 0, 0, 0]  # fmt: skip
    edition = sent_edition(session, daily_list, ["ann@example.com"], now=now, settings=settings)
    links = session.scalars(select(TrackedLink).where(TrackedLink.edition_id == edition.id)).all()
    for link, (human, machine) in zip(links, [(5, 1), (2, 3)], strict=False):
        link.human_clicks, link.machine_clicks = human, machine
    session.add(EditionEngagement(edition_id=edition.id, human_opens=4, machine_opens=9))
    session.commit()

    found = samples(client)

    assert found[("newsletter_link_clicks_total", (("by", "person"),))] == 7
    assert found[("newsletter_link_clicks_total", (("by", "machine"),))] == 4
    assert found[("newsletter_opens_total", (("by", "person"),))] == 4
    assert found[("newsletter_opens_total", (("by", "machine"),))] == 9
    labels = {name for (metric_name, labelled) in found if "clicks" in metric_name
              or "opens" in metric_name for name, _ in labelled}  # fmt: skip
    assert labels == {"by"}


@pytest.fixture
def reader_tokens(
    session: Session, settings: Settings, lists: list[NewsletterList]
) -> dict[str, str]:
    subscription, _ = subscribe(
        session,
        lists[0],
        Signup("ada@example.com"),
        now=TEST_NOW,
        confirmed=True,
        source="test",
    )
    session.commit()
    sid, lid = subscription.subscriber_id, subscription.list_id
    return {
        "confirm": make_confirm_token(settings.secret_key, sid, [lid], key_of(sid), now=TEST_NOW),
        "unsubscribe": make_token(settings.secret_key, UNSUBSCRIBE, sid, lid, key_of(sid)),
        "preferences": make_token(settings.secret_key, PREFERENCES, sid, lid, key_of(sid)),
    }


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/subscribe", 200),
        ("POST", "/subscribe", 400),
        ("GET", "/confirm/{confirm}", 200),
        ("GET", "/confirm/broken", 400),
        ("GET", "/unsubscribe/{unsubscribe}", 200),
        ("GET", "/preferences/{preferences}", 200),
        ("GET", "/preferences/{preferences}/data.json", 200),
        ("GET", "/api/v1/lists", 200),
        ("GET", "/healthz", 200),
        ("GET", "/no-such-page", 404),
    ],
)
def test_security_headers_on_every_answer(
    client: TestClient,
    reader_tokens: dict[str, str],
    method: str,
    path: str,
    status: int,
) -> None:
    response = client.request(method, path.format(**reader_tokens))

    assert response.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self'" in policy


def test_pages_carry_tokens_without_leaking_them(
    client: TestClient, reader_tokens: dict[str, str]
) -> None:
    """Token pages also ask the browser, in the page itself, never to send a Referer."""
    page = client.get(f"/preferences/{reader_tokens['preferences']}")

    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<meta name="referrer" content="no-referrer">' in page.text


def test_rate_limited_page_has_security_headers(make_client: AppFactory, session: Session) -> None:
    client = make_client(signup_rate_limit_per_ip="1/minute")
    client.post("/subscribe", data={"email": "a@example.com"})

    response = client.post("/subscribe", data={"email": "a@example.com"})

    assert response.status_code == 429
    assert response.headers["referrer-policy"] == "no-referrer"


def test_subscription_gauge_has_no_rows_when_empty(client: TestClient, session: Session) -> None:
    assert session.scalars(select(Subscription)).all() == []
    names = {name for name, _ in samples(client)}
    assert "newsletter_subscriptions" not in names


def test_the_served_app_keeps_its_start_up_out_of_the_collectors_sight(
    settings: Settings,
) -> None:
    """``newsletter serve`` runs ``served_app``: start-up's objects frozen, so a full garbage
    collection does not walk them mid-request (bench/clicks.py: p99 56 ms -> 8 ms)."""
    config = uvicorn_config("127.0.0.1", 8000, 1, access_log=False)
    try:
        app = served_app()
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()

    assert config.app == "newsletter.web.app:served_app"
    assert app.title == "newsletter"
    assert frozen > 10_000
