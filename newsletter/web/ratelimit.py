"""Signup rate limits per client IP and per target address, shared through Redis."""

from __future__ import annotations

import hashlib

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


class RateLimited(Exception):
    """Too many attempts; the message tells the visitor what happened."""


class SignupLimiter:
    def __init__(self, storage_url: str, per_ip: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url))
        self._per_ip: list[RateLimitItem] = parse_many(per_ip)
        self._per_address: list[RateLimitItem] = parse_many(per_address)

    def check_ip(self, ip: str) -> None:
        if not all(self._limiter.hit(item, "signup-ip", ip) for item in self._per_ip):
            raise RateLimited(
                "Too many signups from your network. Please wait a few minutes and try again."
            )

    def check_address(self, address: str) -> None:
        # Keys hold a hash, not the address: Redis need not learn who signs up.
        key = hashlib.sha256(address.lower().encode()).hexdigest()
        if not all(self._limiter.hit(item, "signup-address", key) for item in self._per_address):
            raise RateLimited(
                "We have already sent several confirmation emails to this address. "
                "Please check that inbox (and its spam folder), or try again later."
            )
