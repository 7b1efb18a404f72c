"""With the broker down the app keeps what was asked and says so; it never answers 500."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.handoff import CeleryHandoff
from newsletter.models import Edition, EditionStatus, NewsletterList, Subscriber
from tests.factories import edition_with_readers
from tests.web.conftest import AppFactory


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def handoff(settings: Settings) -> Iterator[CeleryHandoff]:  # type: ignore[override]
    """The real Celery hand-off, pointed at a Redis that is not there."""
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port()}/0"})
    handoff = CeleryHandoff(down)
    handoff.app.conf.broker_transport_options = {"max_retries": 0}
    handoff.app.conf.task_publish_retry = False
    yield handoff
    handoff.app.close()


def test_a_signup_is_kept_and_the_reader_asked_to_retry(
    make_client: AppFactory, session: Session, lists: list[NewsletterList]
) -> None:
    client = make_client(raise_server_exceptions=False)

    response = client.post(
        "/api/v1/subscriptions", json={"email": "ada@example.com", "lists": ["daily"]}
    )

    assert response.status_code == 503
    assert response.json()["detail"].startswith("We could not send the email just now")
    assert session.scalars(select(Subscriber.email)).all() == ["ada@example.com"]


def test_an_editors_send_is_committed_for_the_dispatcher(
    make_client: AppFactory, api_token: str, session: Session, daily_list: NewsletterList,
    settings: Settings, now: datetime,
) -> None:  # fmt: skip
    edition = edition_with_readers(
        session, daily_list, ["bo@example.com"], now=now, settings=settings
    )
    api = make_client(headers={"authorization": f"Bearer {api_token}"})

    response = api.post(f"/api/v1/editions/{edition.id}/send")

    assert response.status_code == 202
    session.expire_all()
    assert session.get_one(Edition, edition.id).status == EditionStatus.SCHEDULED
