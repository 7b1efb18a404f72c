"""The ``newsletter`` command run in-process, as an operator would see it, and what a test
needs to run it as a process of its own."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from typer.testing import CliRunner

from newsletter.cli import USER_ERRORS, app

runner = CliRunner()
# The installed command, as a user runs it.
NEWSLETTER = Path(sys.executable).with_name("newsletter")


def newcomer_env(directory: Path, **settings: str) -> dict[str, str]:
    """The environment of someone who just cloned the project into ``directory``: none of
    this run's NEWSLETTER_* settings and no .env file, then ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return env | {"NEWSLETTER_ENV_FILE": str(directory / "no-such.env")} | settings


def run(*args: str) -> tuple[int, str]:
    """Run like ``main()`` does: a user error becomes a message and exit status 1. The
    output's whitespace is collapsed, as rich wraps long lines at the terminal's width."""
    result = runner.invoke(app, list(args))
    if isinstance(result.exception, USER_ERRORS):
        return 1, f"{result.output}error: {result.exception}"
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.output.split())
