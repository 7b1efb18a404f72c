"""Fetching a URL we were given (``posts import URL``, a feed's polls): the one place the
system makes a request to an address that someone else chose.

Such a request must not become a way into the machine or the network it runs on, nor hold a
worker forever. So :func:`fetch`:

- takes only http and https URLs, on the first request and on every redirect;
- resolves each host once and connects to the address it checked (no second lookup that a
  rebinding DNS server could answer differently), refusing loopback, private, link-local,
  unspecified, multicast and reserved addresses unless the install allows private feeds
  (``NEWSLETTER_ALLOW_PRIVATE_FEEDS``, for an intranet CMS);
- gives the whole exchange one deadline (name lookups, connections, redirects and every read
  included), so a server dripping a byte at a time is cut off, not waited for;
- refuses a body past ``max_bytes``, counted after decompression.

Proxies from the environment are not used: the address checked must be the one connected to.

Exceptions::

    FetchError (Exception)          the URL could not be fetched; the message says why, in words
     └── AddressRefused             it leads to an address we do not fetch from
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

USER_AGENT = "newsletter-digest/0.1 (+https://github.com/)"
MAX_REDIRECTS = 5
PRIVATE_HINT = "NEWSLETTER_ALLOW_PRIVATE_FEEDS=true allows them, for a feed on your own network"


class FetchError(Exception):
    """The URL could not be fetched; the message says why (it does not repeat the URL)."""


class AddressRefused(FetchError):
    """The host is, or resolves to, an address on this machine or a private network."""


@dataclass(frozen=True)
class FetchRules:
    deadline: float  # seconds for the whole exchange, redirects included
    max_bytes: int  # of the body, after decompression
    allow_private: bool = False


@dataclass(frozen=True)
class Fetched:
    """An answer: its body (empty for ``not_modified``, an HTTP 304) and the final URL,
    after redirects, against which relative links in the body are resolved."""

    content: bytes
    url: str = ""
    content_type: str = ""
    etag: str = ""
    last_modified: str = ""
    not_modified: bool = False


def fetch(
    url: str, rules: FetchRules, *, accept: str = "*/*", etag: str = "", last_modified: str = ""
) -> Fetched:
    """GET ``url`` (conditionally, given validators); raises :class:`FetchError`."""
    _require_http(url)
    headers = {"User-Agent": USER_AGENT, "Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    backend = _GuardedBackend(time.monotonic() + rules.deadline, rules.allow_private)
    try:
        with httpx.Client(transport=_GuardedTransport(backend), timeout=rules.deadline) as client:
            response = _follow(client, url, headers)
            try:
                return _read(response, rules.max_bytes)
            finally:
                response.close()
    except httpx.TimeoutException:
        raise FetchError(f"no complete answer within {rules.deadline:g} seconds") from None
    except httpx.DecodingError as error:
        raise FetchError(f"the answer could not be decoded: {error}") from None
    except httpx.TransportError as error:
        raise FetchError(f"could not reach the server: {error or type(error).__name__}") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as error:
        raise FetchError(f"could not fetch it: {error or type(error).__name__}") from None


def _require_http(url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise FetchError("it is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("only http and https URLs are fetched")


def _follow(client: httpx.Client, url: str, headers: dict[str, str]) -> httpx.Response:
    """The first answer that is not a redirect; each hop's URL is checked before it is asked."""
    for hop in range(MAX_REDIRECTS + 1):
        try:
            response = client.send(client.build_request("GET", url, headers=headers), stream=True)
        except AddressRefused as error:
            raise (AddressRefused(f"it redirects to {url}: {error}") if hop else error) from None
        if not response.has_redirect_location:
            return response
        response.close()
        url = urljoin(str(response.url), response.headers["Location"])
        try:
            _require_http(url)
        except FetchError:
            raise FetchError(f"it redirects to {url}, which is not an http(s) URL") from None
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _read(response: httpx.Response, max_bytes: int) -> Fetched:
    if response.status_code == httpx.codes.NOT_MODIFIED:
        return Fetched(b"", str(response.url), not_modified=True)
    if not response.is_success:
        raise FetchError(
            f"the server answered {response.status_code} {response.reason_phrase}".strip()
        )
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(_too_large(max_bytes))
    body = bytearray()
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise FetchError(_too_large(max_bytes))
    return Fetched(
        bytes(body),
        str(response.url),
        response.headers.get("Content-Type", "").split(";")[0].strip().lower(),
        response.headers.get("ETag", ""),
        response.headers.get("Last-Modified", ""),
    )


def _too_large(max_bytes: int) -> str:
    return f"the answer is larger than the {max_bytes:,}-byte limit"


# --- Addresses -----------------------------------------------------------------------------


def refusal(address: str) -> str | None:
    """Why we do not fetch from ``address`` ("a loopback address"), or None if it is public."""
    ip = ipaddress.ip_address(address.split("%")[0])  # an IPv6 zone ("fe80::1%eth0") aside
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for kind, matches in (
        ("a loopback", ip.is_loopback), ("an unspecified", ip.is_unspecified),
        ("a link-local", ip.is_link_local), ("a multicast", ip.is_multicast),
        ("a private", ip.is_private), ("a reserved", ip.is_reserved),
        ("a non-public", not ip.is_global),
    ):  # fmt: skip
        if matches:
            return f"{kind} address"
    return None


def resolve(host: str, port: int, timeout: float) -> list[str]:
    """The addresses of ``host``, looked up within ``timeout`` (getaddrinfo has no timeout of
    its own, so the lookup runs in a thread we stop waiting for)."""
    answer: list[Any] = []

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as error:
            answer.append(error)

    thread = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(max(timeout, 0))
    if not answer:
        raise httpcore.ConnectTimeout(f"no answer from DNS for {host}")
    if isinstance(answer[0], Exception):
        reason = getattr(answer[0], "strerror", None) or answer[0]
        raise httpcore.ConnectError(f"cannot resolve {host}: {reason}")
    return list(dict.fromkeys(str(info[4][0]) for info in answer[0]))


def check_addresses(host: str, addresses: Iterable[str]) -> None:
    """Raise :class:`AddressRefused` if any address of ``host`` is not a public one."""
    for address in addresses:
        why = refusal(address)
        if why:
            where = f"{host} is {why}" if host.strip("[]") == address else (
                f"{host} resolves to {address}, {why}"
            )  # fmt: skip
            raise AddressRefused(f"{where}; {PRIVATE_HINT}")


def refuse_private_host(url: str, *, timeout: float = 5) -> None:
    """Raise :class:`AddressRefused` at once if the host of ``url`` is, or resolves to, a
    non-public address. A host that does not resolve now passes: its fetches will say so,
    and every fetch checks again anyway."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = resolve(host, 0, timeout)
    except (httpcore.ConnectError, httpcore.ConnectTimeout):
        return
    check_addresses(host, addresses)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the fetch's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream, self._deadline = stream, deadline

    def _timeout(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("the deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._timeout(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._timeout(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = self._timeout(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, timeout), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses it has checked, and only until the deadline."""

    def __init__(self, deadline: float, allow_private: bool) -> None:
        self._deadline, self._allow_private = deadline, allow_private
        self._tcp = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline - time.monotonic()
        addresses = resolve(host, port, left if timeout is None else min(timeout, left))
        if not self._allow_private:
            check_addresses(host, addresses)
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("the deadline passed")
            try:
                stream = self._tcp.connect_tcp(
                    address, port, left if timeout is None else min(timeout, left),
                    local_address, socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
                continue
            return _DeadlineStream(stream, self._deadline)
        raise failure

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, backend: _GuardedBackend) -> None:
        # No proxy from the environment: the address checked must be the one connected to.
        super().__init__(trust_env=False)
        # httpx has no public way to give its connection pool a network backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=backend
        )
