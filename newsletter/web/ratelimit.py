"""Rate limits shared through Redis: signups per client IP and per target address, editor
sign-ins per account and per client IP."""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter


class RateLimited(Exception):
    """Too many attempts; the message tells the visitor what happened."""

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def limit_storage(redis_url: str) -> Storage:
    """Where every limiter of a process keeps its counts: Redis, or memory without one."""
    # A Redis that hangs must fail a signup in seconds (503), not hold its worker thread.
    timeouts = {"socket_timeout": 2, "socket_connect_timeout": 2} if redis_url else {}
    storage = storage_from_string(redis_url or "memory://", **timeouts)
    assert isinstance(storage, Storage), "a synchronous storage URL"
    return storage


def _hashed(value: str) -> str:
    # Keys hold a hash, not the address: Redis need not learn who signs up or in.
    return hashlib.sha256(value.lower().encode()).hexdigest()


class SignupLimiter:
    def __init__(self, storage: Storage, per_ip: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_ip: list[RateLimitItem] = parse_many(per_ip)
        self._per_address: list[RateLimitItem] = parse_many(per_address)

    def check_ip(self, ip: str) -> None:
        if not all(self._limiter.hit(item, "signup-ip", ip) for item in self._per_ip):
            raise RateLimited(
                "Too many signups from your network. Please wait a few minutes and try again."
            )

    def check_address(self, address: str) -> None:
        key = _hashed(address)
        if not all(self._limiter.hit(item, "signup-address", key) for item in self._per_address):
            raise RateLimited(
                "We have already sent several confirmation emails to this address. "
                "Please check that inbox (and its spam folder), or try again later."
            )


class LoginThrottle:
    """Editor sign-in attempts per account and per client IP, in moving windows.

    Each attempt is counted *before* its password is checked, atomically in Redis, so parallel
    guessers cannot slip in between a check and a count, and a throttled attempt costs no
    argon2 work. A successful sign-in clears its account's count; never its IP's, or one
    editor's own account would reset the guessing budget of their network. The account key
    is the address as sign-in looks it up, whether or not such an editor exists.
    """

    MESSAGE = (
        "Too many sign-in attempts. For the account's safety, please wait {wait} and try "
        "again. If you have forgotten your password, an operator can set a new one."
    )

    def __init__(self, storage: Storage, per_account: str, per_ip: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_account: list[RateLimitItem] = parse_many(per_account)
        self._per_ip: list[RateLimitItem] = parse_many(per_ip)

    def attempt(self, account: str, ip: str) -> None:
        """Count one sign-in attempt; RateLimited (with its Retry-After) past a limit."""
        for items, namespace, key in (
            (self._per_ip, "login-ip", ip),
            (self._per_account, "login-account", _hashed(account)),
        ):
            for item in items:
                if not self._limiter.hit(item, namespace, key):
                    raise self._refusal(item, namespace, key)

    def succeeded(self, account: str) -> None:
        for item in self._per_account:
            self._limiter.clear(item, "login-account", _hashed(account))

    def _refusal(self, item: RateLimitItem, namespace: str, key: str) -> RateLimited:
        # The windows live on the limits library's clock (the epoch, as Redis keeps it), so
        # the wait is measured on that clock too.
        reset_at = self._limiter.get_window_stats(item, namespace, key).reset_time
        wait = max(1, math.ceil(reset_at - time.time()))
        minutes = math.ceil(wait / 60)
        words = f"{minutes} minute{'s' if minutes != 1 else ''}"
        return RateLimited(self.MESSAGE.format(wait=words), retry_after=wait)
