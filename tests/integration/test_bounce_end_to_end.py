"""A bounce the whole way round, on real parts: a Celery worker sends an edition through a
real Postfix to addresses that do not exist; Postfix writes its DSNs to each message's VERP
return path and delivers them, by its transport_maps, to `newsletter inbound serve`; the
readers end up blocked, and the next edition skips them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.editions.build import build_edition
from newsletter.editions.lifecycle import start_sending
from newsletter.handoff import CeleryHandoff
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    MailEvent,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.subscriptions.service import Signup, import_subscribers
from tests.factories import edition_with_readers, post
from tests.inbound_server import Inbound, start_inbound_server
from tests.integration.helpers import start_solo_worker, stop_worker, wait_until_sent
from tests.postfix import Postfix, postfix_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(postfix_available() is not None, reason=str(postfix_available())),
]

# email-validator refuses the reserved .test names, so the harness gets domains of ours.
DEAD_DOMAIN, BOUNCE_DOMAIN = "dead.example.net", "bounces.example.net"
DEAD = [f"ghost@{DEAD_DOMAIN}", f"phantom@{DEAD_DOMAIN}"]
DOMAINS = {"dead_domain": DEAD_DOMAIN, "bounce_domain": BOUNCE_DOMAIN}


@pytest.fixture
def inbound(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> Iterator[Inbound]:
    monkeypatch.setenv("NEWSLETTER_BOUNCE_ADDRESS", f"bounces@{BOUNCE_DOMAIN}")
    get_settings.cache_clear()
    server = start_inbound_server(tmp_path)
    yield server
    server.process.terminate()
    server.process.wait(timeout=30)
    get_settings.cache_clear()


@pytest.fixture(params=["smtp", "lmtp"])
def postfix(request: pytest.FixtureRequest, inbound: Inbound, tmp_path: Path) -> Iterator[Postfix]:
    """Postfix, routing the bounce domain to the inbound server (LMTP: a second server)."""
    lmtp = request.param == "lmtp"
    server = start_inbound_server(tmp_path, "--lmtp") if lmtp else inbound
    with Postfix("127.0.0.1", server.port, lmtp=lmtp, **DOMAINS) as mta:
        yield mta
    if lmtp:
        server.process.terminate()
        server.process.wait(timeout=30)


@pytest.fixture
def sending_settings(
    monkeypatch: pytest.MonkeyPatch, postfix: Postfix, redis_url: str, tmp_path: Path
) -> Iterator[Settings]:
    """A worker of its own, on a queue of its own, that sends through Postfix."""
    env = {
        "NEWSLETTER_SMTP_URL": postfix.url,
        "NEWSLETTER_REDIS_URL": redis_url,
        "NEWSLETTER_CELERY_QUEUE": f"bounce-e2e-{uuid.uuid4().hex[:8]}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    worker = start_solo_worker(env, tmp_path / "worker.log")
    yield get_settings()
    stop_worker(worker)
    get_settings.cache_clear()


def _wait_for_blocks(emails: list[str], postfix: Postfix, inbound: Inbound) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with session_scope() as session:
            statuses = session.scalars(
                select(Subscriber.status).where(Subscriber.email.in_(emails))
            ).all()
        if statuses and set(statuses) == {SubscriberStatus.BLOCKED}:
            return
        time.sleep(0.2)
    raise AssertionError(
        f"readers not blocked; Postfix log:\n{postfix.log()}\ninbound log:\n"
        f"{inbound.log.read_text()}"
    )


def test_a_real_postfix_dsn_blocks_the_reader_and_the_next_edition_skips_them(
    sending_settings: Settings, postfix: Postfix, inbound: Inbound, session: Session,
    daily_list: NewsletterList, now: datetime,
) -> None:  # fmt: skip
    edition = edition_with_readers(session, daily_list, DEAD, now=now, settings=sending_settings)
    CeleryHandoff(sending_settings).send_edition(edition.id)
    progress = wait_until_sent(edition.id)
    assert progress.sent == len(DEAD)  # Postfix accepted them; it bounces them afterwards

    _wait_for_blocks(DEAD, postfix, inbound)
    postfix.wait_until_queue_empty()
    with session_scope() as s:
        events = s.execute(select(MailEvent.address, MailEvent.status, MailEvent.category,
                                  MailEvent.outcome, MailEvent.edition_id)).all()  # fmt: skip
        reasons = s.scalars(select(Subscriber.blocked_reason)).all()
    assert sorted(events) == [(email, "5.1.1", "hard", "blocked", edition.id) for email in DEAD]
    assert all("5.1.1" in reason for reason in reasons)

    # The next day: a new post, a new reader, and an edition that skips the dead ones.
    tomorrow = now + timedelta(days=1)
    upsert_posts(session, [post(50, tomorrow - timedelta(hours=2))])
    import_subscribers(session, daily_list, [Signup("newcomer@example.com")], now=tomorrow,
                       source="test")  # fmt: skip
    next_edition = build_edition(session, daily_list, tomorrow.date(), now=tomorrow,
                                 settings=sending_settings).edition  # fmt: skip
    start_sending(session, next_edition.id, now=tomorrow)
    session.commit()
    mailed = session.scalars(
        select(Subscriber.email)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.edition_id == next_edition.id)
    ).all()
    assert mailed == ["newcomer@example.com"]


@pytest.fixture
def refusing_postfix(inbound: Inbound) -> Iterator[Postfix]:
    with Postfix("127.0.0.1", inbound.port, refuse_unknown=True, **DOMAINS) as mta:
        yield mta


def test_a_reader_refused_at_rcpt_by_a_real_postfix_is_blocked(
    monkeypatch: pytest.MonkeyPatch, refusing_postfix: Postfix, redis_url: str, tmp_path: Path,
    session: Session, daily_list: NewsletterList, now: datetime,
) -> None:  # fmt: skip
    env = {
        "NEWSLETTER_SMTP_URL": refusing_postfix.url,
        "NEWSLETTER_REDIS_URL": redis_url,
        "NEWSLETTER_CELERY_QUEUE": f"bounce-e2e-{uuid.uuid4().hex[:8]}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    settings = get_settings()
    worker = start_solo_worker(env, tmp_path / "worker.log")
    try:
        edition = edition_with_readers(session, daily_list, DEAD[:1], now=now, settings=settings)
        CeleryHandoff(settings).send_edition(edition.id)
        wait_until_sent(edition.id)
    finally:
        stop_worker(worker)
    with session_scope() as s:
        delivery = s.scalar(select(Delivery.status).where(Delivery.edition_id == edition.id))
        reader = s.scalar(select(Subscriber).where(Subscriber.email == DEAD[0]))
        assert reader is not None
        assert delivery == DeliveryStatus.FAILED
        assert reader.status == SubscriberStatus.BLOCKED
        assert "5.1.1" in reader.blocked_reason
