"""The editors' web admin under /admin: server-rendered pages, a little JavaScript for live
progress. Every route but the login page depends on a signed-in editor, and every form on
its CSRF token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from newsletter.web.admin import login, pages
from newsletter.web.auth import check_csrf, require_editor

router = APIRouter()
router.include_router(login.router)
protected = APIRouter(dependencies=[Depends(require_editor), Depends(check_csrf)])
protected.include_router(pages.router)
router.include_router(protected)
