from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from newsletter.cli.common import settings
from newsletter.config import Settings, get_settings, record_served_url

if TYPE_CHECKING:
    import uvicorn


def _tcp_socket(sock: socket.socket) -> socket.socket:
    """The listening socket with its protocol set to TCP.

    asyncio turns on TCP_NODELAY only for sockets whose ``proto`` is IPPROTO_TCP (CPython
    3.11); uvicorn's shared worker socket has proto 0, so with ``--workers`` every response
    waited ~40 ms for Nagle's algorithm and the client's delayed ACK (22 requests/s on one
    connection instead of 3,600).
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto:
        return sock
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.set_inheritable(True)
    return tcp


def uvicorn_config(host: str, port: int, workers: int, *, access_log: bool) -> uvicorn.Config:
    """uvicorn's settings for the app. Its own proxy-header handling stays off: the app
    decides who the client is (``newsletter.web.forwarded``), from trusted proxies only."""
    import uvicorn

    return uvicorn.Config(
        "newsletter.web.app:served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        log_level="info",
        access_log=access_log,
    )


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0", "::", "::1", "")  # noqa: S104


def served_url(host: str, port: int) -> str:
    """The address a browser on this machine reaches ``host:port`` at."""
    shown = "localhost" if host in _LOCAL_HOSTS else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def links_in_use(config: Settings, host: str, port: int) -> tuple[str, list[str]]:
    """The base URL the server's links will use, and the warnings to print about it.

    With no NEWSLETTER_BASE_URL in development, links follow the served address (and the
    other commands of this directory follow it too): a newcomer on ``--port 8802`` gets
    links to port 8802, not to a port nobody serves.
    """
    served = served_url(host, port)
    if config.base_url_origin != "NEWSLETTER_BASE_URL" and config.environment == "development":
        return served, []
    configured = urlsplit(config.base_url)
    local = configured.hostname in ("localhost", "127.0.0.1", "::1")
    default_port = {"http": 80, "https": 443}.get(configured.scheme)
    if local and (configured.port or default_port) != port:
        return config.base_url, [
            f"NEWSLETTER_BASE_URL is {config.base_url}, but this server listens on port "
            f"{port}: links in emails will not reach it unless a proxy forwards there."
        ]
    return config.base_url, []


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            hidden=True,
            help="No longer needed: X-Forwarded-For is believed from NEWSLETTER_TRUSTED_PROXIES.",
        ),
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request (tokens redacted).")] = True,
) -> None:
    """Serve the reader pages, the admin and the JSON API (FastAPI on uvicorn).

    Links in emails and pages start with NEWSLETTER_BASE_URL, the public address readers
    reach (https in production). Unset in development, they use the address served here,
    e.g. http://localhost:8802 with --port 8802, and so do the other commands run from this
    directory afterwards (digest send, dispatch, workers).

    Behind a proxy, list it in NEWSLETTER_TRUSTED_PROXIES: the app then takes the client's
    address from its X-Forwarded-For, and from no one else's.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if proxy_headers:
        typer.echo(
            "--proxy-headers is no longer needed: X-Forwarded-For is believed only from "
            "NEWSLETTER_TRUSTED_PROXIES.",
            err=True,
        )
    current = settings()
    base_url, link_warnings = links_in_use(current, host, port)
    if base_url != current.base_url:
        record_served_url(base_url)
        os.environ["NEWSLETTER_BASE_URL"] = base_url  # the app, here and in its workers
        get_settings.cache_clear()
    typer.echo(f"Links in emails and pages start with {base_url}")
    for warning in [*link_warnings, *current.startup_warnings()]:
        typer.secho(f"WARNING: {warning}", fg=typer.colors.RED, bold=True, err=True)
    config = uvicorn_config(host, port, workers, access_log=access_log)
    if workers == 1:
        uvicorn.Server(config).run()
        return
    Multiprocess(config, sockets=[_tcp_socket(config.bind_socket())]).run()
