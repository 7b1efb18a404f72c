"""Who the client is: the one place that decides, from the peer and X-Forwarded-For.

X-Forwarded-For is a list anyone can start: each proxy appends the address it was connected
from, so only the entries added by proxies we trust are true. The client is therefore the
rightmost hop that is not a trusted proxy, and the header is read at all only when the
direct peer is a trusted proxy (``NEWSLETTER_TRUSTED_PROXIES``). Everyone else is known by
the address it connects from, whatever it writes in its headers.

``ForwardedClient`` puts that answer into the ASGI scope once per request, so everything
downstream agrees on it: the signup and login rate limits, the consent log
(``context.client``) and uvicorn's access log. ``newsletter serve`` therefore leaves
uvicorn's own proxy-header handling off.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.config import ip_networks

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(value: str) -> Address | None:
    """An IP from a peer or a hop, IPv4-mapped IPv6 unwrapped; None for anything else."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The proxies whose X-Forwarded-For we believe, from a comma-separated setting."""

    def __init__(self, setting: str) -> None:
        self.networks: tuple[Network, ...] = ip_networks(setting)

    def __contains__(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def client_address(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The client's IP, given the direct peer and every X-Forwarded-For header value.

        An untrusted peer is the client. Behind a trusted one, walk the hops from the right
        past trusted proxies; the first other hop is the client. A hop that is not an IP
        (a misconfigured proxy) is not believed: the last trusted hop is answered instead.
        """
        hop = _address(peer)
        if hop is None or hop not in self:
            return peer
        hops = [entry for value in forwarded_for for entry in value.split(",") if entry.strip()]
        for entry in reversed(hops):
            earlier = _address(entry)
            if earlier is None:
                return str(hop)
            hop = earlier
            if hop not in self:
                return str(hop)
        return str(hop)  # every hop is a trusted proxy: the farthest one


class ForwardedClient:
    """ASGI middleware: set ``scope["client"]`` to the client ``TrustedProxies`` names."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if scope["type"] in ("http", "websocket") and peer and self.trusted.networks:
            forwarded = [
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"x-forwarded-for"
            ]
            host = self.trusted.client_address(peer[0], forwarded)
            if host != peer[0]:
                # In place, like uvicorn's own middleware, so its access log sees it too.
                scope["client"] = (host, 0)
        await self.app(scope, receive, send)
