"""The editor JSON API, version 1: the admin's operations for the CMS and scripts.

Every route needs an editor API token (``Authorization: Bearer nlt_...``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from newsletter.web.auth import require_api_editor

router = APIRouter(
    prefix="/api/v1", tags=["editor api"], dependencies=[Depends(require_api_editor)]
)
