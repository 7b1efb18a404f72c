"""Locate the top-level ``templates/`` and ``config/`` folders, in a checkout or a wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# In a checkout (editable install) the folders sit beside the package; a wheel carries copies
# under newsletter/_resources. pyproject.toml tells a checkout from site-packages.
_ROOT = (
    _PACKAGE.parent if (_PACKAGE.parent / "pyproject.toml").exists() else _PACKAGE / "_resources"
)


def resource_path(*parts: str) -> Path:
    """Path of a shipped resource such as ``resource_path("templates", "email")``."""
    return _ROOT.joinpath(*parts)


def data_path(name: str) -> Path:
    """Path of a file in ``newsletter/data`` (the sample feed)."""
    return _PACKAGE / "data" / name
