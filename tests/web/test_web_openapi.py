"""The OpenAPI document describes every route, and no generated request makes the app fail."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import NewsletterList
from newsletter.web import create_app
from tests.web.conftest import RecordingNotifier

DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
KNOWN = {
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/subscribe"),
    ("POST", "/subscribe"),
    ("GET", "/confirm/{token}"),
    ("POST", "/confirm/{token}"),
    ("GET", "/unsubscribe/{token}"),
    ("POST", "/unsubscribe/{token}"),
    ("GET", "/preferences/{token}"),
    ("POST", "/preferences/{token}"),
    ("POST", "/preferences/{token}/unsubscribe-all"),
    ("GET", "/preferences/{token}/data.json"),
    ("POST", "/preferences/{token}/erase"),
    ("POST", "/api/v1/subscriptions"),
    ("GET", "/api/v1/lists"),
}


def served_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app serves, looking inside included routers."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from served_routes(included.routes, prefix + getattr(context, "prefix", ""))
            continue
        path = prefix + route.path
        if path in DOCUMENTATION:
            continue
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                yield method, path


def test_every_route_is_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    app = client.app
    assert isinstance(app, FastAPI)

    routes = set(served_routes(app.routes))

    assert routes >= KNOWN  # the walk found the routes (pages included), so it is not vacuous
    missing = sorted(
        f"{method} {path}" for method, path in routes if method.lower() not in paths.get(path, {})
    )
    assert missing == []


def test_documentation_pages_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200


def _document() -> dict[str, Any]:
    """The app's OpenAPI document, from an app that is never served (no database needed)."""
    throwaway = Settings(
        environment="development", redis_url="", database_url="sqlite://", secret_key="x" * 32
    )
    return create_app(throwaway, notifier=RecordingNotifier()).openapi()


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture
def web_app(
    session: Session,
    settings: Settings,
    lists: list[NewsletterList],
    notifier: RecordingNotifier,
) -> FastAPI:
    """The app under test, on the test database, with limits out of the generator's way."""
    return create_app(
        settings.model_copy(
            update={
                "redis_url": "",
                "signup_rate_limit_per_ip": "100000/minute",
                "signup_rate_limit_per_address": "100000/minute",
            }
        ),
        notifier=notifier,
    )


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
