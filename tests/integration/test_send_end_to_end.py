"""The daily digest through a real Celery worker, a real Redis and a real SMTP server."""

from __future__ import annotations

import re
from datetime import datetime
from email.message import EmailMessage

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.fanout import pending_batches
from newsletter.editions.lifecycle import start_sending
from newsletter.models import Delivery, DeliveryStatus, NewsletterList
from newsletter.subscriptions.tokens import UNSUBSCRIBE, read_token
from tests.integration.helpers import sample_edition, wait_until_sent
from tests.smtp_server import RecordingHandler

READERS = [f"reader{i}@example.com" for i in range(7)]
SEED_TITLE = "Russia and Ukraine Peace Talks in Doubt as Putin is a No Show"
SEED_DEK = (
    "Russian President Putin declines to attend peace talks with Ukraine in Turkey, "
    "putting the prospects of a new agreement in doubt"
)


@pytest.fixture
def sent(
    worker: object, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime, smtp: RecordingHandler,
) -> dict[str, EmailMessage]:  # fmt: skip
    from workers.tasks import send_edition

    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    send_edition.delay(edition.id)
    wait_until_sent(edition.id)
    return {r: items[0].message for r, items in smtp.by_recipient().items()}


def test_every_reader_receives_one_message(
    sent: dict[str, EmailMessage], smtp: RecordingHandler
) -> None:
    assert sorted(sent) == sorted(READERS)
    assert len(smtp.received) == len(READERS)


def test_message_is_text_then_html_alternative(sent: dict[str, EmailMessage]) -> None:
    message = sent[READERS[0]]
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]


def test_headers_for_mailbox_providers(sent: dict[str, EmailMessage], settings: Settings) -> None:
    message = sent[READERS[0]]
    assert message["To"] == READERS[0]
    assert message["From"] == "Shortlysts <digest@shortlysts.example.com>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Shortlysts Daily <daily.news.example.com>"
    assert re.fullmatch(r"<[\w.]+@news\.example\.com>", message["Message-ID"])
    https, mailto = [v.strip(" <>") for v in message["List-Unsubscribe"].split(",")]
    assert https.startswith("https://news.example.com/unsubscribe/")
    assert mailto.startswith("mailto:unsubscribe@news.example.com?subject=unsubscribe")


def test_message_ids_are_unique(sent: dict[str, EmailMessage]) -> None:
    ids = {m["Message-ID"] for m in sent.values()}
    assert len(ids) == len(READERS)


def test_reader_sees_the_seed_post(sent: dict[str, EmailMessage]) -> None:
    message = sent[READERS[0]]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert SEED_TITLE in message["Subject"]
    assert SEED_TITLE.upper() in text
    assert SEED_TITLE in html
    assert SEED_DEK in re.sub(r"\s+", " ", text)
    assert SEED_DEK in html


def test_unsubscribe_link_in_footer_verifies_for_that_reader(
    sent: dict[str, EmailMessage], session: Session, daily_list: NewsletterList, settings: Settings
) -> None:
    for address, message in sent.items():
        html = message.get_body(("html",)).get_content()
        match = re.search(r'href="https://news\.example\.com/unsubscribe/([^"]+)"', html)
        assert match, "the footer has an unsubscribe link"
        token = read_token(settings.secret_key, UNSUBSCRIBE, match.group(1))
        assert token.list_id == daily_list.id
        delivery = session.scalar(
            select(Delivery).where(Delivery.subscriber_id == token.subscriber_id)
        )
        assert delivery is not None
        assert delivery.message_id == message["Message-ID"]
        assert address in message.get_body(("plain",)).get_content()


def test_html_has_inlined_styles_and_fits_gmail(sent: dict[str, EmailMessage]) -> None:
    message = sent[READERS[0]]
    html = message.get_body(("html",)).get_content()
    assert '<td style="' in html or "<div style=" in html
    assert "@media" in html
    assert len(html.encode()) < 102 * 1024


def test_ledger_marks_every_delivery_sent(sent: dict[str, EmailMessage], session: Session) -> None:
    rows = session.scalars(select(Delivery)).all()
    assert {row.status for row in rows} == {DeliveryStatus.SENT}
    assert all(row.attempts == 1 and row.sent_at for row in rows)


def test_sending_the_same_edition_twice_mails_each_reader_once(
    worker: object, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime, smtp: RecordingHandler,
) -> None:  # fmt: skip
    from workers.tasks import send_edition

    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    send_edition.delay(edition.id)
    send_edition.delay(edition.id)
    wait_until_sent(edition.id)
    send_edition.delay(edition.id)
    wait_until_sent(edition.id)
    assert sorted(r for item in smtp.received for r in item.recipients) == sorted(READERS)


def test_a_batch_task_delivered_twice_mails_each_reader_once(
    worker: object, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime, smtp: RecordingHandler,
) -> None:  # fmt: skip
    from workers.tasks import deliver

    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    with session_scope() as unit:
        start_sending(unit, edition.id, now=now)
    with session_scope() as unit:
        batches = pending_batches(unit, edition.id, batch_size=3)
    assert len(batches) == 3
    for batch in batches:
        # The same task twice, as Redis redelivers after a lost acknowledgement.
        deliver.delay(batch.edition_id, batch.first_id, batch.last_id)
        deliver.delay(batch.edition_id, batch.first_id, batch.last_id)
    wait_until_sent(edition.id)
    assert sorted(r for item in smtp.received for r in item.recipients) == sorted(READERS)
