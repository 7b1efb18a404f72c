"""URLs that carry a reader's token, and keeping those tokens out of logs and caches.

A token in a reader link is as good as the reader's password for their subscription: it
must not be written to access logs, nor kept by a browser or a shared cache. Which URLs
carry one is decided here; ``tests/security`` checks that every ``{token}`` route is covered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

# /confirm/<token>, /unsubscribe/<token>, /preferences/<token>[/...], wherever they are
# mounted; and a token passed as a query parameter.
TOKEN_PATH_PREFIXES = ("confirm", "unsubscribe", "preferences")
_IN_PATH = re.compile(rf"(/(?:{'|'.join(TOKEN_PATH_PREFIXES)})/)[^/?#\s\"]+")
_IN_QUERY = re.compile(r"((?:^|[?&;])token=)[^&;#\s\"]*")
# The reader part of a tracked link or open pixel: /r/<link>/<reader>, /o/<edition>/<reader>.
_READER_PART = re.compile(r"(/[ro]/[^/?#\s\"]+/)[^/?#\s\"]+")
REDACTED = "[redacted]"

# Loggers that write request lines: uvicorn's (``newsletter serve``) and gunicorn's.
ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access")


def carries_token(path: str, query: str = "") -> bool:
    """True for a request whose URL holds a reader token."""
    return bool(_IN_PATH.search(path) or _IN_QUERY.search(query) or _READER_PART.search(path))


def redact(target: str) -> str:
    """A path (with or without its query) with every reader token replaced."""
    target = _READER_PART.sub(rf"\g<1>{REDACTED}", _IN_PATH.sub(rf"\g<1>{REDACTED}", target))
    return _IN_QUERY.sub(rf"\g<1>{REDACTED}", target)


def _redacted(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class RedactTokens(logging.Filter):
    """Rewrite a log record's message and arguments with reader tokens redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _redacted(value) for key, value in record.args.items()}
        return True


def redact_access_logs() -> None:
    """Install ``RedactTokens`` on the access loggers, once per process."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactTokens) for existing in logger.filters):
            logger.addFilter(RedactTokens())
