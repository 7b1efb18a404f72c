"""The ``newsletter`` command run in-process, as an operator would see it."""

from __future__ import annotations

from typer.testing import CliRunner

from newsletter.cli import USER_ERRORS, app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    """Run like ``main()`` does: a user error becomes a message and exit status 1. The
    output's whitespace is collapsed, as rich wraps long lines at the terminal's width."""
    result = runner.invoke(app, list(args))
    if isinstance(result.exception, USER_ERRORS):
        return 1, f"{result.output}error: {result.exception}"
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.output.split())
