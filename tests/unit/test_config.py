"""Settings: TOML defaults < environment; the placeholder secret refused outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from newsletter.config import PLACEHOLDER_SECRET, ConfigurationError, Settings


def configuration_error(raised: pytest.ExceptionInfo[ValidationError]) -> ConfigurationError:
    [error] = raised.value.errors()
    cause = error.get("ctx", {}).get("error")
    assert isinstance(cause, ConfigurationError)
    return cause


def test_production_refuses_the_placeholder_secret() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(environment="production", secret_key=PLACEHOLDER_SECRET)
    message = str(configuration_error(raised))
    assert "NEWSLETTER_SECRET_KEY" in message
    assert "production" in message


def test_production_refuses_an_empty_secret() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(environment="production", secret_key="")
    configuration_error(raised)


def test_test_environment_refuses_the_placeholder_secret() -> None:
    with pytest.raises(ValidationError):
        Settings(environment="test", secret_key="change-me")


def test_development_accepts_the_placeholder_secret() -> None:
    settings = Settings(environment="development", secret_key="change-me")
    assert settings.secret_key == "change-me"


def test_production_accepts_a_real_secret() -> None:
    settings = Settings(
        environment="production", secret_key="x" * 48, base_url="https://news.example.com"
    )
    assert settings.environment == "production"


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ValidationError, match="environment"):
        Settings(environment="staging", secret_key="x" * 48)


def test_environment_variable_overrides_the_toml_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "42")
    assert Settings().batch_size == 42


def test_toml_default_applies_without_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NEWSLETTER_BATCH_SIZE", raising=False)
    monkeypatch.delenv("NEWSLETTER_SITE_NAME", raising=False)
    settings = Settings()
    assert settings.batch_size == 500
    assert settings.site_name == "Shortlysts"


def test_environment_variable_overrides_the_lookback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_FIRST_EDITION_LOOKBACK_HOURS", "6")
    assert Settings().first_edition_lookback_hours == 6


def test_environment_variable_names_ignore_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("newsletter_site_name", "Shortlysts Weekend")
    assert Settings().site_name == "Shortlysts Weekend"


def test_explicit_value_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "42")
    assert Settings(batch_size=7).batch_size == 7


def test_environment_variable_of_the_wrong_type_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "lots")
    with pytest.raises(ValidationError, match="batch_size"):
        Settings()


def test_batch_size_below_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="NEWSLETTER_BATCH_SIZE"):
        Settings()


def test_message_domain_defaults_to_the_base_url_host() -> None:
    settings = Settings(mail_domain="", base_url="https://news.example.com/app")
    assert settings.message_domain == "news.example.com"


def test_message_domain_prefers_the_mail_domain() -> None:
    settings = Settings(mail_domain="mail.example.com", base_url="https://news.example.com")
    assert settings.message_domain == "mail.example.com"
