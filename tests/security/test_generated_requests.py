"""Generated requests over every operation, as an editor, with a post already stored that
carries a control character and a noncharacter (as an older release may have stored it):
no 5xx. The unauthenticated run is tests/web/test_web_openapi.py."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import update
from sqlalchemy.orm import Session

from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.editions.build import build_edition
from newsletter.models import NewsletterList, Post
from newsletter.posts.ingest import upsert_posts
from tests.factories import post
from tests.web.conftest import RecordingNotifier
from tests.web.test_web_openapi import app_for_generated_requests, schema


@pytest.fixture
def stored_hostile_post(
    session: Session, lists: list[NewsletterList], now: datetime, settings: Settings
) -> None:
    upsert_posts(session, [post(1, now - timedelta(hours=2))])
    session.execute(update(Post).values(title="Hello\u0001world \uffff", dek="Dek\u0002"))
    build_edition(session, lists[0], now.date(), now=now, settings=settings)
    session.commit()


@pytest.fixture
def web_app(
    settings: Settings, stored_hostile_post: None, notifier: RecordingNotifier,
    clock: FrozenClock,
) -> FastAPI:  # fmt: skip
    return app_for_generated_requests(settings, notifier, clock)


@schema.parametrize()
@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_generated_editor_requests_never_fail_the_server(
    case: schemathesis.Case, web_app: FastAPI, api_token: str
) -> None:
    case.call_and_validate(
        app=web_app, headers={"authorization": f"Bearer {api_token}"}, checks=[not_a_server_error]
    )
