"""The public archive: each list's past editions, and an RSS feed of them."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/archive", tags=["archive"])
