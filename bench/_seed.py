"""Shared by the sending benchmarks: an emptied database with one list, its sample posts,
N confirmed readers inserted set-based, and a built edition."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"
NOW = datetime(2025, 5, 16, 7, 30, tzinfo=UTC)


def emit(metric: str, value: float, unit: str) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit}), flush=True)


def bench_environment(**extra: str) -> dict[str, str]:
    """Settings for a benchmark run, applied to this process (and its workers)."""
    env = {
        "NEWSLETTER_ENVIRONMENT": "test",
        "NEWSLETTER_SECRET_KEY": "bench-secret",
        "NEWSLETTER_DATABASE_URL": os.environ.get(
            "NEWSLETTER_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL
        ),
        "NEWSLETTER_REDIS_URL": os.environ.get(
            "NEWSLETTER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"
        ),
        "NEWSLETTER_BASE_URL": "https://news.example.com",
        "NEWSLETTER_FIRST_EDITION_LOOKBACK_HOURS": "48",
        **extra,
    }
    os.environ.update(env)
    from newsletter.config import get_settings

    get_settings.cache_clear()
    return env


@dataclass(frozen=True)
class Seeded:
    database_url: str
    list_id: int
    edition_id: int
    message_bytes: int


def seed(subscribers: int) -> Seeded:
    """Empty the benchmark database and fill it: one list, N confirmed readers, an edition."""
    from sqlalchemy import insert, select, text

    from newsletter import migrate
    from newsletter.config import get_settings
    from newsletter.db import Base, get_engine, session_scope
    from newsletter.delivery.prepared import Recipient, prepare_edition
    from newsletter.editions.build import build_edition
    from newsletter.lists.service import ListSpec, create_list
    from newsletter.models import NewsletterList, Subscriber, Subscription, SubscriptionStatus
    from newsletter.posts.ingest import upsert_posts
    from newsletter.posts.sources import parse_feed
    from newsletter.resources import data_path

    settings = get_settings()
    database_url = settings.database_url
    with get_engine(database_url).begin() as connection:
        if connection.dialect.name == "postgresql":
            # Whatever schema an earlier checkout left (tables this one does not know).
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        else:
            Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate.upgrade(database_url)
    with session_scope(database_url) as session:
        spec = ListSpec(slug="daily", name="Daily", from_address="digest@shortlysts.example.com")
        list_id = create_list(session, spec).id
        feed = data_path("sample_feed.xml").read_bytes()
        upsert_posts(session, parse_feed(feed, now=NOW).posts)
    with get_engine(database_url).begin() as connection:
        for start in range(0, subscribers, 20000):
            rows = range(start, min(start + 20000, subscribers))
            connection.execute(insert(Subscriber), [
                {"email": f"r{i}@example.com", "email_key": f"r{i}@example.com", "name": "",
                 "status": "active", "created_at": NOW} for i in rows
            ])  # fmt: skip
        connection.execute(
            insert(Subscription).from_select(
                ["subscriber_id", "list_id", "status", "frequency", "source", "created_at"],
                select(
                    Subscriber.id,
                    text(str(list_id)),
                    text(f"'{SubscriptionStatus.CONFIRMED.value}'"),
                    text("'daily'"),
                    text("'bench'"),
                    Subscriber.created_at,
                ),
            )
        )
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
    with session_scope(database_url) as session:
        nl = session.get(NewsletterList, list_id)
        assert nl is not None
        edition = build_edition(session, nl, NOW.date(), now=NOW, settings=settings).edition
        message = prepare_edition(edition, settings, now=NOW).personalise(
            Recipient(1, 1, "r1@example.com")
        )
        return Seeded(database_url, list_id, edition.id, len(message.data))
