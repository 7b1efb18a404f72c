"""Locate the top-level ``templates/`` and ``config/`` folders, in a checkout or a wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource: the checkout's copy first, then the wheel's."""
    checkout = _PACKAGE.parent.joinpath(*parts)
    if checkout.exists():
        return checkout
    return _PACKAGE.joinpath("_resources", *parts)


def data_path(name: str) -> Path:
    """Path of a file in ``newsletter/data`` (the sample feed)."""
    return _PACKAGE / "data" / name
