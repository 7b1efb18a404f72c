"""Who may call what, checked against every route the app serves.

The routes are read from the app itself, so a route added later is covered without touching
this file: unless it is on the short PUBLIC allowlist below, a stranger is refused (401/403,
or the admin's redirect to its login page), an admin form needs its CSRF token even from a
signed-in editor, and the editor API refuses a revoked token. Provider webhooks
(``/webhooks/``) are authenticated by the provider's signature or credentials, not an
editor's: enabled, each refuses an unsigned request.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.routing import Route

from newsletter.config import Settings
from newsletter.editors.service import revoke_token
from newsletter.models import ApiToken
from newsletter.web import create_app
from tests.web.conftest import AdminClient, AppFactory, RecordingHandoff

# FastAPI's own documentation routes: served, but not operations of the document itself.
DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}

# Everything a stranger may call. Keep it short: a new route is private until added here.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    *(("GET", path) for path in DOCUMENTATION),
    # Reader pages: the signed token in the URL is the reader's credential.
    ("GET", "/subscribe"),
    ("POST", "/subscribe"),
    ("GET", "/confirm/{token}"),
    ("POST", "/confirm/{token}"),
    ("GET", "/unsubscribe/{token}"),
    ("POST", "/unsubscribe/{token}"),
    ("GET", "/preferences/{token}"),
    ("POST", "/preferences/{token}"),
    # Tracked links and the open pixel: the signed link is all they take, and they lead
    # only to an edition's own stories.
    ("GET", "/r/{link}"),
    ("GET", "/r/{link}/{reader}"),
    ("GET", "/o/{pixel}/{reader}"),
    ("POST", "/preferences/{token}/unsubscribe-all"),
    ("GET", "/preferences/{token}/data.json"),
    ("POST", "/preferences/{token}/erase"),
    # The public JSON API.
    ("POST", "/api/v1/subscriptions"),
    ("GET", "/api/v1/lists"),
    # Signing in.
    ("GET", "/admin/login"),
    ("POST", "/admin/login"),
}
# Read-only pages of what readers have already received.
PUBLIC_PREFIXES = {("GET", "/archive/")}

# Sample values for path parameters, by name; any other parameter gets "1".
SAMPLES = {"slug": "daily", "day": "2025-05-16", "date": "2025-05-16", "token": "x"}
_PARAMETER = re.compile(r"\{(\w+)(?::(\w+))?\}")


@dataclass(frozen=True, order=True)
class Endpoint:
    method: str
    template: str  # as routed: /api/v1/editions/{edition_id}

    @property
    def path(self) -> str:
        """The template with every parameter filled in, so the request reaches the route."""

        def sample(match: re.Match[str]) -> str:
            name, convertor = match.group(1), match.group(2)
            if convertor in ("int", "float"):
                return "1"
            return SAMPLES.get(name, "1")

        return _PARAMETER.sub(sample, self.template)

    @property
    def public(self) -> bool:
        return (self.method, self.template) in PUBLIC or any(
            self.method == method and self.template.startswith(prefix)
            for method, prefix in PUBLIC_PREFIXES
        )

    @property
    def admin(self) -> bool:
        return self.template == "/admin" or self.template.startswith("/admin/")

    @property
    def webhook(self) -> bool:
        return self.template.startswith("/webhooks/")

    @property
    def editor_api(self) -> bool:
        return self.template.startswith("/api/") and not self.public

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


@dataclass
class Walk:
    endpoints: list[Endpoint]
    unrecognised: list[str]  # route objects the walk cannot see into, such as a Mount


def walk(routes: Iterable[Any], prefix: str = "") -> Walk:
    """Every (method, path) the app serves, looking inside included routers."""
    found = Walk([], [])
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            inner = walk(included.routes, prefix + getattr(context, "prefix", ""))
            found.endpoints += inner.endpoints
            found.unrecognised += inner.unrecognised
        elif isinstance(route, APIRoute | Route):
            methods = sorted((route.methods or set()) - {"HEAD"})
            found.endpoints += [Endpoint(m, prefix + route.path) for m in methods]
        else:
            found.unrecognised.append(f"{type(route).__name__} {getattr(route, 'path', '?')}")
    return found


def _app() -> FastAPI:
    """The app as configured in production, never served (no database needed)."""
    throwaway = Settings(
        environment="development", redis_url="", database_url="sqlite://", secret_key="x" * 32
    )
    return create_app(throwaway, handoff=RecordingHandoff())


ROUTES = walk(_app().routes)
ENDPOINTS = sorted(set(ROUTES.endpoints))


def requests(client: TestClient, endpoints: Iterable[Endpoint]) -> Iterator[tuple[Endpoint, Any]]:
    for endpoint in endpoints:
        yield endpoint, client.request(endpoint.method, endpoint.path, follow_redirects=False)


def test_the_walk_sees_every_route() -> None:
    templates = {str(e) for e in ENDPOINTS}

    assert ROUTES.unrecognised == []  # a Mount needs its own rule in this file
    # One of each area, so a walk that found nothing would not pass the tests below.
    assert {
        "GET /healthz",
        "GET /subscribe",
        "POST /api/v1/subscriptions",
        "POST /api/v1/posts",
        "PATCH /api/v1/editions/{edition_id}",
        "GET /admin",
        "POST /admin/logout",
        "GET /admin/inbound",
        "GET /admin/inbound/{message_id}",
        "GET /archive/{slug}",
    } <= templates


def test_every_public_route_on_the_allowlist_exists() -> None:
    served = {(e.method, e.template) for e in ENDPOINTS}

    assert sorted(PUBLIC - served) == []


def test_every_private_route_refuses_a_stranger(client: TestClient) -> None:
    let_in = []
    private = (e for e in ENDPOINTS if not e.public and not e.webhook)
    for endpoint, response in requests(client, private):
        to_login = response.status_code == 303 and response.headers["location"].startswith(
            "/admin/login"
        )
        if response.status_code in (401, 403) or (endpoint.admin and to_login):
            continue
        let_in.append(f"{endpoint}: {response.status_code}")

    assert let_in == []


def _webhook_settings() -> dict[str, str]:
    """Every provider webhook enabled, with keys nobody outside this test holds."""
    public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return {
        "webhook_ses_topic_arns": "arn:aws:sns:us-east-1:123456789012:bounces",
        "webhook_sendgrid_public_key": base64.b64encode(public).decode(),
        "webhook_mailgun_signing_key": "key-test",
        "webhook_postmark_credentials": "postmark:secret",
    }


def test_every_webhook_refuses_an_unsigned_request(make_client: AppFactory) -> None:
    client = make_client(**_webhook_settings())
    webhooks = [e for e in ENDPOINTS if e.webhook]
    accepted = [
        f"{endpoint}: {response.status_code}"
        for endpoint in webhooks
        if (response := client.request(endpoint.method, endpoint.path, json={})).status_code
        not in (401, 403)
    ]

    assert len(webhooks) == 4
    assert accepted == []


def test_the_editor_api_answers_a_stranger_in_json(client: TestClient) -> None:
    answers = {
        str(endpoint): (response.status_code, response.json().get("detail", "")[:26])
        for endpoint, response in requests(client, (e for e in ENDPOINTS if e.editor_api))
    }

    assert answers
    assert set(answers.values()) == {(401, "This needs an editor API t")}


def test_every_admin_form_needs_its_csrf_token(admin: AdminClient) -> None:
    forms = [e for e in ENDPOINTS if e.admin and e.method not in ("GET", "HEAD", "OPTIONS")]
    accepted = [
        f"{endpoint}: {response.status_code}"
        for endpoint, response in requests(admin.client, forms)
        if response.status_code != 403
    ]

    assert forms
    assert accepted == []
    # Still signed in: the refused logout did not sign the editor out.
    assert admin.get("/admin", follow_redirects=False).status_code == 200


def test_every_editor_api_route_refuses_a_revoked_token(
    api: TestClient, session: Session, now: datetime
) -> None:
    token = session.scalars(select(ApiToken)).one()
    revoke_token(session, token.id, now=now)
    session.commit()

    accepted = [
        f"{endpoint}: {response.status_code}"
        for endpoint, response in requests(api, (e for e in ENDPOINTS if e.editor_api))
        if response.status_code != 401
    ]

    assert accepted == []


def test_every_route_is_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    missing = [
        str(e)
        for e in ENDPOINTS
        if e.template not in DOCUMENTATION and e.method.lower() not in paths.get(e.template, {})
    ]

    assert missing == []


def test_the_openapi_document_shows_which_routes_need_a_token(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    undeclared = [
        str(e)
        for e in ENDPOINTS
        if e.editor_api
        and {"HTTPBearer": []} not in paths[e.template][e.method.lower()].get("security", [])
    ]

    assert undeclared == []
