"""The files of deploy/ as the deployment tests read them: unit settings, the commands that
units and the crontab run, and whether the ``newsletter`` command takes them."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
CRONTAB = DEPLOY / "cron" / "newsletter"
ENV_EXAMPLE = ROOT / "config" / "production.example.env"

# Where docs/deploy.md installs the checkout and its virtualenv.
INSTALLED = "/opt/newsletter/.venv/bin/newsletter"
INSTALLED_CELERY = "/opt/newsletter/.venv/bin/celery"

# Values for the specifiers the units use, as systemd would fill them in.
_SPECIFIERS = {"%i": "1", "%I": "1", "%H": "mail1", "%%": "%"}


def unit_files() -> list[Path]:
    return sorted(path for path in UNITS.iterdir() if path.suffix in (".service", ".target"))


def services() -> list[Path]:
    return [path for path in unit_files() if path.suffix == ".service"]


def unit_setting(unit: Path, key: str) -> list[str]:
    """Every value of ``key=`` in a unit file, in order (a key may be given more than once)."""
    prefix = f"{key}="
    return [
        line.removeprefix(prefix)
        for line in unit.read_text(encoding="utf-8").splitlines()
        if line.startswith(prefix)
    ]


def exec_start(unit: Path) -> list[str]:
    """A unit's ExecStart= as the argument list systemd passes, specifiers filled in."""
    [command] = unit_setting(unit, "ExecStart")
    filled = re.sub("%.", lambda match: _SPECIFIERS[match.group()], command)
    return shlex.split(filled)


def crontab_commands() -> list[list[str]]:
    """The command of each crontab entry, commented-out examples included, from the program
    on: ``systemd-cat`` and its options before it are left out."""
    entry = re.compile(r"^#?\s*(?:[\d*/,-]+\s+){5}newsletter\s+(.*)$")
    commands = []
    for line in CRONTAB.read_text(encoding="utf-8").splitlines():
        found = entry.match(line)
        if found:
            words = shlex.split(found.group(1))
            program = next(i for i, word in enumerate(words) if word.startswith("/opt/"))
            commands.append(words[program:])
    return commands


@cache
def _cli() -> Any:
    """The ``newsletter`` command as click sees it."""
    import typer

    from newsletter.cli import app

    return typer.main.get_command(app)


def cli_refusal(args: list[str]) -> str | None:
    """Why ``newsletter ARGS`` would be refused before it runs (no such command, an unknown
    option, a value of the wrong type), or None when the CLI takes it. The arguments are
    parsed as the CLI parses them, and nothing is run. What follows ``--`` is Celery's
    (``newsletter worker -- --hostname=...``) and not looked at."""
    command = _cli()
    parent, name = None, "newsletter"
    rest = args[: args.index("--")] if "--" in args else list(args)
    try:
        # Typer carries its own copy of click: its classes and errors are known by their
        # methods here, not imported from a private module.
        while hasattr(command, "get_command") and rest and not rest[0].startswith("-"):
            parent = command.make_context(name, [], parent=parent, resilient_parsing=True)
            name = rest.pop(0)
            found = command.get_command(parent, name)
            if found is None:
                return f"newsletter {' '.join(args)}: No such command {name!r}"
            command = found
        command.make_context(name, rest, parent=parent)
    except Exception as error:
        if not hasattr(error, "format_message"):
            raise
        return f"newsletter {' '.join(args)}: {error.format_message()}"
    return None


def missing_command(args: list[str]) -> bool:
    """True when the first words of ``newsletter ARGS`` name no command at all."""
    refusal = cli_refusal(args)
    return refusal is not None and "No such command" in refusal
