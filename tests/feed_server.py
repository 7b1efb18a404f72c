"""A real HTTP server for feed tests (http.server in a thread), answering as each test says
and recording what it was asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from newsletter.resources import data_path

SAMPLE_FEED = data_path("sample_feed.xml").read_bytes()


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the first byte
    # False: no Content-Length; the body ends when the connection closes.
    declare_length: bool = True
    drip: float = 0.0  # seconds between chunks of 1,000 bytes: a server that is slow to finish


Responder = Callable[[Message], Answer]


def conditional(body: bytes, *, etag: str = "", last_modified: str = "") -> Responder:
    """A feed that answers 304 to a request carrying its current validators."""
    headers = {"Content-Type": "application/rss+xml"}
    if etag:
        headers["ETag"] = etag
    if last_modified:
        headers["Last-Modified"] = last_modified

    def answer(request: Message) -> Answer:
        if (etag and request.get("If-None-Match") == etag) or (
            last_modified and request.get("If-Modified-Since") == last_modified
        ):
            return Answer(304, headers=headers)
        return Answer(200, body, headers)

    return answer


class FeedServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Answer | Responder] = {}
        self.requests: list[tuple[str, Message]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers))
                route = server.routes.get(self.path, Answer(404, b"no such feed"))
                answer = route if isinstance(route, Answer) else route(self.headers)
                time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.declare_length:
                    self.send_header("Content-Length", str(len(answer.body)))
                else:
                    self.close_connection = True
                self.end_headers()
                if answer.status == 304:
                    return
                chunk = 1000 if answer.drip else max(len(answer.body), 1)
                for start in range(0, len(answer.body), chunk):
                    time.sleep(answer.drip)
                    self.wfile.write(answer.body[start : start + chunk])
                    self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test's assertions say what happened

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that gave up (timeout, size limit) closed the connection

        self.httpd = Server((host, 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def serve(self, path: str, answer: Answer | Responder) -> str:
        self.routes[path] = answer
        return self.url(path)

    def __enter__(self) -> FeedServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
