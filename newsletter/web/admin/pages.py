"""The admin pages behind the login: the dashboard, the edition page, the tables, and the
one script they use (live progress), served from this site for the admin's CSP."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter
from fastapi.responses import Response

from newsletter.resources import resource_path
from newsletter.web.admin import browse, dashboard, editions, inbound, readers, reports

router = APIRouter()
router.include_router(dashboard.router)
router.include_router(editions.router)
router.include_router(browse.router)
router.include_router(readers.router)
router.include_router(inbound.router)
router.include_router(reports.router)


@cache
def _admin_script() -> bytes:
    return resource_path("templates", "web", "admin", "admin.js").read_bytes()


@router.get(
    "/admin/static/admin.js",
    tags=["admin"],
    summary="The admin's script: live progress and confirmations",
    response_class=Response,
)
def admin_script() -> Response:
    # no-cache: revalidated on each page, so a deploy's new script is never mixed with old pages.
    return Response(
        _admin_script(),
        media_type="text/javascript; charset=utf-8",
        headers={"cache-control": "no-cache"},
    )
