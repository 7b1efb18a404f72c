from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter.cli.common import settings

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
        "newsletter.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        log_level="info",
        access_log=access_log,
    )


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
    """Serve the reader pages and the JSON API (FastAPI on uvicorn).

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
    for warning in settings().startup_warnings():
        typer.secho(f"WARNING: {warning}", fg=typer.colors.RED, bold=True, err=True)
    config = uvicorn_config(host, port, workers, access_log=access_log)
    if workers == 1:
        uvicorn.Server(config).run()
        return
    Multiprocess(config, sockets=[_tcp_socket(config.bind_socket())]).run()
