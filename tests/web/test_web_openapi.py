"""No request generated from the OpenAPI document makes the app fail. (That every route is
in the document is checked with the route walk of test_auth_coverage.)"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from sqlalchemy.orm import Session

from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.models import NewsletterList
from newsletter.web import create_app
from tests.web.conftest import RecordingHandoff, RecordingNotifier


def test_documentation_pages_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200


def _document() -> dict[str, Any]:
    """The app's OpenAPI document, from an app that is never served (no database needed)."""
    throwaway = Settings(
        environment="development", redis_url="", database_url="sqlite://", secret_key="x" * 32
    )
    return create_app(throwaway, handoff=RecordingHandoff()).openapi()


schema = schemathesis.openapi.from_dict(_document())


def app_for_generated_requests(
    settings: Settings, handoff: RecordingNotifier, clock: FrozenClock
) -> FastAPI:
    """The app on the test database, with limits out of the generator's way."""
    return create_app(
        settings.model_copy(
            update={
                "redis_url": "",
                "signup_rate_limit_per_ip": "100000/minute",
                "signup_rate_limit_per_address": "100000/minute",
            }
        ),
        handoff=handoff,
        clock=clock,
    )


@pytest.fixture
def web_app(
    session: Session,
    settings: Settings,
    lists: list[NewsletterList],
    notifier: RecordingNotifier,
    clock: FrozenClock,
) -> FastAPI:
    return app_for_generated_requests(settings, notifier, clock)


@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_generated_requests_never_fail_the_server(
    case: schemathesis.Case, web_app: FastAPI
) -> None:
    case.call_and_validate(app=web_app, checks=[not_a_server_error])
