"""Delivery failures, split the way the retry policy needs them.

DeliveryError
├── TemporaryFailure     4xx reply for one message: retry later with backoff
├── PermanentFailure     5xx reply for one message: record, never retry
├── ConnectionLost       the connection failed before the message was accepted: retry
│                        every unsent message of the batch
├── DeliveryUncertain    the connection failed after the whole message went out and before
│                        the server's reply: it may have been accepted, so it is not retried
└── Throttled            the relay's rate limit or backoff holds messages back for longer
                         than a worker should wait: try the rest after ``retry_after`` s
"""

from __future__ import annotations


class DeliveryError(Exception):
    def __init__(self, message: str, code: int | None = None, *, stage: str = "") -> None:
        super().__init__(message)
        self.code = code
        # The SMTP command the server refused ("MAIL FROM", "RCPT TO", "end of DATA"...):
        # only a refusal of the recipient or of the message says anything about the reader.
        self.stage = stage


class TemporaryFailure(DeliveryError):
    pass


class PermanentFailure(DeliveryError):
    pass


class ConnectionLost(DeliveryError):
    pass


class DeliveryUncertain(DeliveryError):
    pass


class Throttled(DeliveryError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
