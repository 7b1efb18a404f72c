"""The messages the email checks look at, built once per test module: the demo's digest and
notices and the stress digest, as sent (tests/sent_messages.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from newsletter.config import get_settings
from newsletter.db import Base, get_engine, session_factory
from tests.moments import TEST_NOW
from tests.sent_messages import SentMessage, sent_messages


@pytest.fixture(scope="module")
def sent(database_url: str) -> Iterator[dict[str, SentMessage]]:
    """Each message by name; every table is emptied afterwards."""
    get_settings.cache_clear()
    try:
        with session_factory(database_url)() as session:
            messages = sent_messages(session, now=TEST_NOW, settings=get_settings())
        yield {message.name: message for message in messages}
    finally:
        with get_engine(database_url).begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
