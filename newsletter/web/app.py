"""The FastAPI application: ``newsletter serve`` or any ASGI server on ``create_app()``."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from limits.errors import StorageError
from limits.storage import Storage
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis import RedisError
from sqlalchemy import text
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.analytics.recorder import ClickRecorder
from newsletter.clock import Clock, clock_for
from newsletter.config import Settings, get_settings
from newsletter.db import get_engine
from newsletter.handoff import BrokerUnavailable, Handoff, default_handoff
from newsletter.web import (
    admin,
    api,
    archive,
    clicks,
    editor_api,
    editor_catalog,
    pages,
    reports_api,
    webhooks,
)
from newsletter.web.auth import SESSION_COOKIE, LoginRequired, login_url
from newsletter.web.context import Web, message, page_environment
from newsletter.web.forwarded import ForwardedClient, TrustedProxies
from newsletter.web.metrics import DatabaseCollector
from newsletter.web.ratelimit import LoginThrottle, RateLimited, SignupLimiter, limit_storage
from newsletter.web.token_urls import carries_token, redact, redact_access_logs

log = logging.getLogger(__name__)

RETRY_AFTER_S = 60
SECURITY_HEADERS = {
    # Tokens live in URLs: never leak them to other sites through Referer.
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


class SecurityHeaders:
    """Add SECURITY_HEADERS to every response that does not set them itself, and
    ``Cache-Control: no-store`` to every answer to a URL holding a reader's token.

    Plain ASGI rather than ``@app.middleware("http")``: that one reads the request inside a
    task group, which would wrap the body limit's 413 into an ExceptionGroup.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        private = carries_token(scope["path"], scope.get("query_string", b"").decode("latin-1"))

        async def with_headers(event: Message) -> None:
            if event["type"] == "http.response.start":
                headers = list(event.get("headers", []))
                if private:  # neither the browser nor a shared cache may keep it
                    headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                present = {name.lower() for name, _ in headers}
                extra = [
                    (name.encode(), value.encode())
                    for name, value in SECURITY_HEADERS.items()
                    if name.encode() not in present
                ]
                event = {**event, "headers": [*headers, *extra]}
            await send(event)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            incoming = await receive()
            seen += len(incoming.get("body", b""))
            if seen > self.limit:
                # An HTTPException passes through FastAPI's body parsing as it is.
                raise HTTPException(413, self.message)
            return incoming

        await self.app(scope, counted, send)

    @property
    def message(self) -> str:
        return f"Request body too large: the limit is {self.limit:,} bytes."

    async def _refuse(self, send: Send) -> None:
        body = self.message.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def _database_check(database_url: str) -> str:
    try:
        with get_engine(database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # report, do not crash, when the database is down
        log.warning("health check: database unreachable: %s", error)
        return "unreachable"
    return "ok"


def _redis_check(storage: Storage) -> str:
    """Redis as the rate limits reach it (their storage, with its timeouts)."""
    if storage.check():
        return "ok"
    log.warning("health check: Redis unreachable")
    return "unreachable"


def _try_again(request: Request, detail: str) -> Response:
    """503 with Retry-After: what was asked could not be done just now, and may be soon."""
    headers = {"retry-after": str(RETRY_AFTER_S)}
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": detail}, status_code=503, headers=headers)
    page = message(request, "Please try again shortly", detail, status_code=503)
    page.headers.update(headers)
    return page


def _describe(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # The click buffer's Redis connections go back when the app stops.
    await app.state.web.clicks.close()


def create_app(
    settings: Settings | None = None,
    handoff: Handoff | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The app. ``handoff`` defaults to Celery when a broker is configured (else background
    threads), ``clock`` to the one the settings ask for (the real time)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="newsletter",
        version="0.1.0",
        description="Reader pages (subscribe, confirm, preferences, unsubscribe) and the JSON API.",
        lifespan=_lifespan,
    )
    clock = clock or clock_for(settings)
    storage = limit_storage(settings.redis_url)
    app.state.web = Web(
        settings=settings,
        limiter=SignupLimiter(
            storage, settings.signup_rate_limit_per_ip, settings.signup_rate_limit_per_address
        ),
        handoff=handoff or default_handoff(settings, clock),
        pages=page_environment(),
        clock=clock,
        login_throttle=LoginThrottle(
            storage, settings.login_rate_limit_per_account, settings.login_rate_limit_per_ip
        ),
        clicks=ClickRecorder(settings.redis_url),
    )
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(settings.database_url, clock))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        detail = _describe(error)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": detail}, status_code=422)
        return message(request, "That did not work", detail, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        """Starlette's own refusals (bad multipart, too many fields, a body over the limit) as
        pages outside the API and the webhooks, whose callers are programs reading JSON."""
        if error.status_code == 404 and request.url.path.startswith("/r/"):
            # A tracked link cut or re-encoded on its way: lead to the archive, not a bare 404.
            return clicks.unknown_link(request)
        if request.url.path.startswith(("/api/", "/webhooks/")) or error.status_code < 400:
            return JSONResponse(
                {"detail": error.detail}, status_code=error.status_code, headers=error.headers
            )
        return message(
            request, "That did not work", str(error.detail), status_code=error.status_code
        )

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, error: LoginRequired) -> Response:
        return RedirectResponse(login_url(error.next_path), status_code=303)

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, error: RateLimited) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"detail": str(error)}, status_code=429,
                headers={"retry-after": str(error.retry_after)},
            )  # fmt: skip
        return message(request, "Please slow down", str(error), status_code=429)

    @app.exception_handler(BrokerUnavailable)
    async def broker_unavailable(request: Request, error: BrokerUnavailable) -> Response:
        """What was asked is saved; only the email behind it could not be queued."""
        log.error("%s %s: %s", request.method, redact(request.url.path), error)
        return _try_again(
            request, "We could not send the email just now. Please try again in a few minutes."
        )

    @app.exception_handler(StorageError)
    @app.exception_handler(RedisError)
    async def redis_unavailable(request: Request, error: Exception) -> Response:
        """Redis, where the rate limits are counted, is down: nothing can be let through
        unchecked, so the visitor is asked to come back rather than shown an error."""
        log.error("%s %s: Redis unavailable: %s", request.method, redact(request.url.path), error)
        return _try_again(
            request, "We cannot take this request just now. Please try again in a minute."
        )

    @app.get("/healthz", tags=["operations"], summary="Liveness, database and Redis checks")
    def healthz() -> JSONResponse:
        """Each dependency by name ("ok", "unreachable", or Redis "not used" without a
        NEWSLETTER_REDIS_URL); 503 when any is unreachable."""
        checks = {"database": _database_check(settings.database_url), "redis": "not used"}
        if settings.redis_url:
            checks["redis"] = _redis_check(storage)
        healthy = "unreachable" not in checks.values()
        return JSONResponse(
            {"status": "ok" if healthy else "error", **checks}, status_code=200 if healthy else 503
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics",
             response_class=PlainTextResponse)  # fmt: skip
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # First: the redirect is the busiest route (every click of every reader), and routing
    # tries routes in order.
    app.include_router(clicks.router)
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(editor_catalog.router)
    app.include_router(editor_api.router)
    app.include_router(reports_api.router)
    app.include_router(admin.router)
    app.include_router(archive.router)
    app.include_router(webhooks.router)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        # The browser may drop the cookie then; the session row ends it regardless.
        max_age=round(settings.editor_session_hours * 3600),
        path="/admin",
        same_site="lax",
        https_only=settings.base_url.startswith("https://"),
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    # Outermost, so that every layer and the access log know the client by the same address.
    app.add_middleware(ForwardedClient, trusted=TrustedProxies(settings.trusted_proxies))
    redact_access_logs()
    return app


def served_app() -> FastAPI:
    """The app as a server process runs it (``newsletter serve``, or any ASGI server with
    ``newsletter.web.app:served_app`` as its factory).

    What start-up made (routes, templates, models, settings) lives as long as the process, so
    it is taken out of the garbage collector's sight: a full collection walked all of it and
    stalled about one request in a hundred by 50-90 ms under load (``bench/clicks.py``).
    """
    app = create_app()
    gc.freeze()
    return app
