from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn).")] = 1,
    proxy_headers: Annotated[bool, typer.Option(help="Trust X-Forwarded-* from a proxy.")] = False,
) -> None:
    """Serve the reader pages and the JSON API (FastAPI on uvicorn)."""
    import uvicorn

    uvicorn.run(
        "newsletter.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        log_level="info",
    )
