"""Closing a client ends its keep-alive connections, whatever still refers to a response of it.

A local HTTP/1.1 server keeps each connection open for the next request and notes when the
client ends it.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connections import errors
from connections.http import BaseClient

pytestmark = pytest.mark.django_db  # each call is written to the sync history


class _KeepAliveServer(ThreadingHTTPServer):
    def __init__(self):
        self.ended = threading.Event()  # a client ended its connection

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the connection stays open after an answer

            def do_GET(self):  # noqa: N802 (http.server naming)
                body = b'{"message": "refused"}'
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def finish(self):
                super().finish()
                self.server.ended.set()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@pytest.fixture
def server():
    s = _KeepAliveServer()
    thread = threading.Thread(target=s.serve_forever, daemon=True)
    thread.start()
    yield s
    s.shutdown()
    s.server_close()
    thread.join(5)


def test_closing_a_client_ends_its_connection_while_the_error_of_a_call_is_still_kept(server):
    # The error's traceback keeps the call's frame, and with it the response and its connection
    # pool. requests' own close() (urllib3 2) only forgets the pool, which closes its connections
    # when it is garbage-collected: the connection stayed open as long as the error was kept (in
    # the tests, a live-server thread waited on it until after the server had stopped).
    client = BaseClient(max_retries=0)
    with pytest.raises(errors.ValidationError) as caught:
        client.request("GET", server.url + "/thing")
    assert not server.ended.wait(0.2)  # kept alive for the next call

    client.close()

    assert server.ended.wait(5), "the connection is still open after close()"
    assert caught.value.status == 400  # the error is still at hand
