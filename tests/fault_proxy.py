"""A small HTTP proxy on 127.0.0.1 that forwards to a local S3 server (moto) and injects
faults: a share of requests answered 503 SlowDown, some responses cut mid-body (the
connection closed), some delayed. The choices come from a seeded generator, and every
fault is counted."""

from __future__ import annotations

import http.client
import http.server
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class Faults:
    """The share of requests that fail with 503, are cut mid-body, or wait `delay` s; with
    `fail_after`, the store goes down for good after that many requests."""

    slow_down: float = 0.0
    cut: float = 0.0
    delayed: float = 0.0
    delay: float = 0.3
    fail_after: int | None = None  # from this many requests on, every one fails (503)
    blocked_puts: str | None = None  # PUTs to paths holding this fail (503), once set
    seed: int = 0
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, method: str = "GET", path: str = "") -> str:
        blocked = self.blocked_puts
        if method == "PUT" and blocked is not None and blocked in path:
            with self._lock:
                self.counts["blocked"] += 1
            return "503"
        with self._lock:
            roll = self._rng.random()
            seen = sum(self.counts.values())
        if roll < self.slow_down or (self.fail_after is not None and seen >= self.fail_after):
            outcome = "503"
        elif roll < self.slow_down + self.cut:
            outcome = "cut"
        elif roll < self.slow_down + self.cut + self.delayed:
            outcome = "delayed"
        else:
            outcome = "ok"
        with self._lock:
            self.counts[outcome] += 1
        return outcome


class FaultProxy:
    """`with FaultProxy(target, faults) as url:` serves until the block ends."""

    def __init__(self, target: str, faults: Faults) -> None:
        self.target = urlsplit(target)
        self.faults = faults
        handler = type("Handler", (_Handler,), {"proxy": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        """Quiet."""

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        outcome = self.proxy.faults.draw(self.command, self.path)
        if outcome == "503":
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(SLOW_DOWN)
            return
        if outcome == "delayed":
            time.sleep(self.proxy.faults.delay)
        target = self.proxy.target
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        if self.command == "HEAD":  # the object's size, and no body
            self.send_header("Content-Length", response.getheader("Content-Length") or "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if outcome == "cut" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward
