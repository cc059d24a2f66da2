"""What the HTTP fakes share: a threading server on a free loopback port, and a JSON reply."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

S = TypeVar("S", bound="Served")


class Loopback:
    """Serves ``handler`` on 127.0.0.1 (``port``) from ``start`` (or entering ``with``) to ``close``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Served:
    """A fake served while a ``with`` block runs."""

    server: Loopback

    def __enter__(self: S) -> S:
        self.server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.close()


def send_json(h: BaseHTTPRequestHandler, status: int, doc: Any, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
    data = json.dumps(doc).encode()
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)
