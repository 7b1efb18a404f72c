"""Checks that need a tool from outside Python (node, SpamAssassin, ...) skip without it on a
developer's machine, and fail without it in CI, where .ci/run installs it and sets the
check's ``NEWSLETTER_REQUIRE_*`` variable."""

from __future__ import annotations

import os

import pytest


def require_tool(missing: str | None, *, variable: str) -> None:
    """Nothing if ``missing`` is None; else skip the calling test for that reason, or fail it
    when the environment variable ``variable`` is set."""
    if missing is None:
        return
    if os.environ.get(variable):
        pytest.fail(missing)
    pytest.skip(missing)
