"""config/production.example.env, the settings file of deploy/systemd/: it names only
settings that exist, its values pass the settings' own checks, and every line is one that
systemd's EnvironmentFile= and the app's .env reader (python-dotenv) read alike."""

from __future__ import annotations

import re
from pathlib import Path

from dotenv import dotenv_values

from newsletter.config import Settings
from tests.deploy_files import ENV_EXAMPLE

# A setting, set or left as a commented-out example ("# NEWSLETTER_IMAP_URL=...").
ASSIGNMENT = re.compile(r"^#?\s*(NEWSLETTER_[A-Z0-9_]+)=(.*)$")


def assignments() -> list[tuple[str, str]]:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return [found.groups() for line in lines if (found := ASSIGNMENT.match(line))]


def test_it_names_only_settings_that_exist() -> None:
    known = {f"NEWSLETTER_{name.upper()}" for name in Settings.model_fields}
    named = [name for name, _ in assignments()]

    assert [name for name in named if name not in known] == []
    assert len(named) == len(set(named)), "a setting named twice"


def test_a_deployment_sets_what_production_needs() -> None:
    set_here = {name for name, _ in assignments()}

    assert {
        "NEWSLETTER_ENVIRONMENT", "NEWSLETTER_SECRET_KEY", "NEWSLETTER_DATABASE_URL",
        "NEWSLETTER_REDIS_URL", "NEWSLETTER_SMTP_URL", "NEWSLETTER_BASE_URL",
        "NEWSLETTER_TRUSTED_PROXIES", "NEWSLETTER_BOUNCE_ADDRESS", "NEWSLETTER_DKIM_DOMAIN",
        "NEWSLETTER_DKIM_PRIVATE_KEY", "NEWSLETTER_POSTAL_ADDRESS", "NEWSLETTER_SITE_NAME",
    } <= set_here  # fmt: skip


def test_every_line_reads_the_same_to_systemd_and_to_dotenv() -> None:
    """KEY=value with no quotes, no comment after the value, no $ (dotenv expands it) and no
    backslash (each reader unescapes its own way)."""
    for name, value in assignments():
        assert not re.search(r"""["'$\\]|\s#""", value), f"{name}={value}"
        assert value == value.strip(), name


def test_its_values_pass_the_settings_checks(tmp_path: Path) -> None:
    values = {
        name.removeprefix("NEWSLETTER_").lower(): value
        for name, value in dotenv_values(ENV_EXAMPLE).items()
        if value is not None
    }
    key = tmp_path / "dkim.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n", encoding="utf-8")
    values |= {"secret_key": "a-long-random-string-for-this-test", "dkim_private_key": str(key)}

    settings = Settings(**values)

    assert settings.environment == "production"
    assert settings.base_url.startswith("https://")
