"""Issue 10, finding 13: with Redis down a signup is refused with 503 and Retry-After (a page
for the form, JSON for the API), never a 500, and /healthz names the dependency that is down."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.models import NewsletterList
from tests.web.conftest import NO_ROWS, AppFactory, RecordingHandoff, count_rows, visible_text
from tests.web.test_broker_down import closed_port


@pytest.fixture
def redis_down(make_client: AppFactory) -> TestClient:
    """The app with NEWSLETTER_REDIS_URL pointing at a port nothing listens on."""
    return make_client(
        raise_server_exceptions=False, redis_url=f"redis://127.0.0.1:{closed_port()}/0"
    )


def test_a_form_signup_is_asked_to_retry(
    redis_down: TestClient, session: Session, lists: list[NewsletterList],
    notifier: RecordingHandoff,
) -> None:  # fmt: skip
    response = redis_down.post("/subscribe", data={"email": "ada@example.com", "lists": "daily"})

    assert response.status_code == 503
    assert response.headers["retry-after"] == "60"
    assert response.headers["content-type"].startswith("text/html")
    assert "Please try again shortly" in response.text
    assert "try again in a minute" in visible_text(response.text)
    assert count_rows(session) == NO_ROWS  # nothing let through unchecked
    assert notifier.calls == []


def test_an_api_signup_is_asked_to_retry(
    redis_down: TestClient, session: Session, lists: list[NewsletterList]
) -> None:
    response = redis_down.post(
        "/api/v1/subscriptions", json={"email": "ada@example.com", "lists": ["daily"]}
    )

    assert response.status_code == 503
    assert response.headers["retry-after"] == "60"
    assert response.json() == {
        "detail": "We cannot take this request just now. Please try again in a minute."
    }
    assert count_rows(session) == NO_ROWS


def test_healthz_reports_redis_down(redis_down: TestClient) -> None:
    response = redis_down.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "ok", "redis": "unreachable"}


def test_healthz_reports_every_dependency_up(make_client: AppFactory, redis_url: str) -> None:
    response = make_client(redis_url=redis_url).get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_without_redis_configured(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "not used"}


def test_healthz_reports_the_database_down_beside_redis(make_client: AppFactory) -> None:
    client = make_client(
        database_url="postgresql+psycopg://u:p@127.0.0.1:1/newsletter",
        redis_url=f"redis://127.0.0.1:{closed_port()}/0",
    )

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable", "redis": "unreachable"}
