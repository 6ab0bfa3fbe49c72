"""A real HTTP proxy in front of moto's S3 server that injects S3 faults by key pattern."""

from __future__ import annotations

import http.client
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
INTERNAL = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"


@dataclass
class FaultProxy:
    url: str
    flaky: str = r"$^"  # GETs of matching paths fail twice (503 SlowDown), then pass
    broken: str = r"$^"  # GETs of matching paths always fail (500 InternalError)
    seen: Counter[str] = field(default_factory=Counter)
    # The first request whose "METHOD /path?query" matches is held until `release` is set: a test
    # can then kill or freeze its sender while the request is in flight. `held` says it arrived.
    hold_once: str = r"$^"
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    target = urlsplit(upstream)
    state = FaultProxy(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            if self.command == "GET":
                with lock:
                    state.seen[self.path] += 1
                    count = state.seen[self.path]
                if re.search(state.broken, self.path):
                    return self._fail(500, INTERNAL)
                if re.search(state.flaky, self.path) and count <= 2:
                    return self._fail(503, SLOW_DOWN)
            with lock:
                hold = not state.held.is_set() and re.search(state.hold_once, f"{self.command} {self.path}")
                if hold:
                    state.held.set()
            if hold:
                state.release.wait(300)
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = self.headers.get("Host", "")
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            connection.close()
            return None

        def _fail(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
