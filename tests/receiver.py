"""A tiny HTTP receiver on 127.0.0.1 for tests that need something to deliver webhooks to,
or a listener that must prove nothing reached it."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    method: str = "POST"


@dataclass
class Receiver:
    """Records every request (any method); answers with the next queued status (default 200)
    and, when ``replies`` has one, the next queued JSON body."""

    statuses: list = field(default_factory=list)
    received: list = field(default_factory=list)
    replies: list = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record_and_answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                                  self.command))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                reply = receiver.replies.pop(0) if receiver.replies else b""
                self.send_response(status)
                if reply:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _record_and_answer  # noqa: N815 (http.server naming)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: stop() waits for the serving loop to notice.
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
