"""Typed settings: ``config/defaults.toml`` < environment file < ``NEWSLETTER_*`` variables."""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import PrivateAttr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from newsletter.resources import resource_path

PLACEHOLDER_SECRET = "change-me"  # noqa: S105  (the value we refuse)
# In development with no NEWSLETTER_BASE_URL, `newsletter serve` records the address it serves
# here, so every command run from this directory (sends, dispatch, workers) links to it.
SERVED_URL_FILE = Path("var", "served-url")
DEFAULT_BASE_URL = "http://localhost:8000"


class ConfigurationError(ValueError):
    """The settings cannot run this process; the message tells the operator what to change."""


def ip_networks(setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of a comma-separated list of IP addresses and CIDRs."""
    networks = []
    for entry in filter(None, (part.strip() for part in setting.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_",
        env_file=os.environ.get("NEWSLETTER_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Literal["development", "test", "production"]
    database_url: str
    redis_url: str
    smtp_url: str
    dkim_domain: str
    dkim_selector: str
    dkim_private_key: Path | None = None
    outbox_dir: Path
    secret_key: str
    base_url: str
    mail_domain: str
    postal_address: str
    batch_size: int
    celery_queue: str
    smtp_timeout: float
    smtp_max_messages_per_connection: int
    smtp_rate_per_second: float
    smtp_rate_per_hour: float
    smtp_relay_backoff_seconds: float
    smtp_relay_down_seconds: float
    delivery_flush_size: int
    delivery_lease_seconds: float
    delivery_receipts: Literal["marks", "each", "group"]
    max_delivery_attempts: int
    retry_backoff_seconds: float
    html_budget_bytes: int
    first_edition_lookback_hours: int
    late_post_lookback_hours: int
    max_import_bytes: int
    site_url: str
    site_name: str
    confirm_token_max_age_hours: int
    pending_signup_ttl_days: int
    signup_rate_limit_per_ip: str
    signup_rate_limit_per_address: str
    login_rate_limit_per_account: str
    login_rate_limit_per_ip: str
    editor_session_hours: float
    max_request_bytes: int
    stale_claim_minutes: float
    dispatch_grace_minutes: float
    beat_dispatch_seconds: float
    feed_max_errors: int
    feed_max_bytes: int
    feed_timeout: float
    allow_private_feeds: bool = False
    trusted_proxies: str
    clock_start: datetime | None = None
    bounce_address: str
    unsubscribe_address: str
    inbound_authserv_id: str
    inbound_max_bytes: int
    inbound_retention_days: int
    bounce_soft_score: float
    bounce_score_threshold: float
    bounce_score_half_life_days: float
    breaker_sample: int
    breaker_min_messages: int
    breaker_hard_bounce_rate: float
    breaker_complaint_rate: float
    imap_url: str
    imap_processed_folder: str
    webhook_ses_topic_arns: str
    webhook_sendgrid_public_key: str
    webhook_mailgun_signing_key: str
    webhook_postmark_credentials: str
    webhook_ses_certificate_hosts: str
    click_machine_seconds: float
    click_burst_seconds: float
    click_burst_share: float
    click_settle_seconds: float
    click_retention_days: int
    utm_source: str

    _base_url_origin: str = PrivateAttr(default="default")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        defaults = TomlConfigSettingsSource(settings_cls, resource_path("config", "defaults.toml"))
        return (init_settings, env_settings, dotenv_settings, defaults)

    @field_validator("clock_start", mode="before")
    @classmethod
    def _empty_means_the_real_clock(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("clock_start")
    @classmethod
    def _clock_start_has_an_offset(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ConfigurationError(
                "NEWSLETTER_CLOCK_START needs its UTC offset, e.g. 2027-03-28T00:59:30Z."
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies_are_addresses(cls, value: str) -> str:
        try:
            ip_networks(value)
        except ValueError as error:
            raise ConfigurationError(
                f"NEWSLETTER_TRUSTED_PROXIES: {error} (write e.g. 127.0.0.1, 10.0.0.0/8)."
            ) from None
        return value

    @field_validator("webhook_ses_certificate_hosts")
    @classmethod
    def _certificate_hosts_is_a_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ConfigurationError(
                f"NEWSLETTER_WEBHOOK_SES_CERTIFICATE_HOSTS is not a regular expression: {error}."
            ) from None
        return value

    @model_validator(mode="after")
    def _base_url_or_the_served_one(self) -> Settings:
        if self.base_url:
            self._base_url_origin = "NEWSLETTER_BASE_URL"
            return self
        if self.environment == "production":
            raise ConfigurationError(
                "NEWSLETTER_BASE_URL is not set: in production it must be the public https:// "
                "address of the web app, which every link in every email points at."
            )
        served = _served_url() if self.environment == "development" else None
        self.base_url = served or DEFAULT_BASE_URL
        self._base_url_origin = f"newsletter serve ({SERVED_URL_FILE})" if served else "default"
        return self

    @property
    def base_url_origin(self) -> str:
        """Where :attr:`base_url` came from: ``NEWSLETTER_BASE_URL``, the address ``newsletter
        serve`` recorded, or ``default``."""
        return self._base_url_origin

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.environment != "development" and self.secret_key in ("", PLACEHOLDER_SECRET):
            raise ConfigurationError(
                f"NEWSLETTER_SECRET_KEY is the placeholder, which is refused in the "
                f"{self.environment} environment. Set it to a long random string, e.g. "
                '`python -c "import secrets; print(secrets.token_urlsafe(48))"`.'
            )
        if self.environment == "production" and urlsplit(self.base_url).scheme != "https":
            raise ConfigurationError(
                f"NEWSLETTER_BASE_URL must be an https:// address in production (got "
                f"{self.base_url!r}): one-click unsubscribe (RFC 8058) needs https, and links "
                "carrying readers' tokens must not travel in the clear."
            )
        if self.dkim_domain and (
            self.dkim_private_key is None or not self.dkim_private_key.is_file()
        ):
            raise ConfigurationError(
                "NEWSLETTER_DKIM_DOMAIN is set, so NEWSLETTER_DKIM_PRIVATE_KEY must name a "
                f"readable PEM private key file (got {self.dkim_private_key})."
            )
        for name in ("batch_size", "delivery_flush_size", "smtp_max_messages_per_connection"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"NEWSLETTER_{name.upper()} must be at least 1.")
        if self.delivery_lease_seconds <= 2 * self.smtp_timeout:
            raise ConfigurationError(
                f"NEWSLETTER_DELIVERY_LEASE_SECONDS ({self.delivery_lease_seconds:g}) must exceed "
                f"twice NEWSLETTER_SMTP_TIMEOUT ({self.smtp_timeout:g}): a worker renews its "
                "lease when half of it is left, and stops sending when less than one SMTP "
                "timeout is left."
            )
        return self

    def startup_warnings(self) -> list[str]:
        """What an operator should hear before serving readers with these settings."""
        warnings = []
        if self.secret_key in ("", PLACEHOLDER_SECRET):
            warnings.append(
                "NEWSLETTER_SECRET_KEY is the placeholder: anyone can forge readers' unsubscribe "
                "and preferences links and editors' sessions. Fine on a laptop; set a long "
                "random value before anyone else can reach this server."
            )
        return warnings

    @property
    def unsubscribe_mailbox(self) -> str:
        """The address in the ``mailto:`` of ``List-Unsubscribe``."""
        return self.unsubscribe_address or f"unsubscribe@{self.message_domain}"

    @property
    def message_domain(self) -> str:
        """Right-hand side of Message-IDs and of the List-Id."""
        return self.mail_domain or urlsplit(self.base_url).hostname or "localhost"


def _served_url() -> str | None:
    try:
        recorded = SERVED_URL_FILE.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return recorded if urlsplit(recorded).scheme in ("http", "https") else None


def record_served_url(url: str) -> None:
    """Remember the address ``newsletter serve`` serves, for the other commands of this
    directory (development only; see :data:`SERVED_URL_FILE`)."""
    SERVED_URL_FILE.parent.mkdir(parents=True, exist_ok=True)
    SERVED_URL_FILE.write_text(url + "\n", encoding="utf-8")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
