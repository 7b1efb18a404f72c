from __future__ import annotations

import socket
from typing import Annotated

import typer


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


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    proxy_headers: Annotated[bool, typer.Option(help="Trust X-Forwarded-* from a proxy.")] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
) -> None:
    """Serve the reader pages and the JSON API (FastAPI on uvicorn)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "newsletter.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips="*" if proxy_headers else None,
        log_level="info",
        access_log=access_log,
    )
    if workers == 1:
        uvicorn.Server(config).run()
        return
    Multiprocess(config, sockets=[_tcp_socket(config.bind_socket())]).run()
