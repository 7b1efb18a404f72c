"""The admin pages behind the login."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from newsletter.web.admin.common import admin_page

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("", response_class=HTMLResponse, summary="Dashboard")
def dashboard(request: Request) -> HTMLResponse:
    return admin_page(request, "dashboard.html")
