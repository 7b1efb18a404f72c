"""The served app answers on a real port, next to a real worker and SMTP server."""

from __future__ import annotations

import httpx

from tests.services import LiveServer


def test_served_app_is_healthy(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}
