"""Connections of ``goalrl serve``: a bounded pool of threads and a silence timeout.

The standard ``ThreadingHTTPServer`` starts one thread per connection, without limit, never
times a client out and listens with a backlog of 5: 300 half-sent requests held 300 threads
and 50 parallel uploads got 18 to 31 connection resets. Here a fixed pool serves
connections (more wait in a queue; past ``max_queued`` they get a 503 and are closed), a
client silent for ``timeout_s`` (counted from the accept while it waits in the queue) is
dropped, and the backlog is 128. Measured under load in docs/benchmarks/command.md.
"""

from __future__ import annotations

import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

MIN_QUEUED_TIMEOUT_S = 0.5  # a connection that waited in the queue gets at least this to speak


class PooledHTTPServer(HTTPServer):
    """``HTTPServer`` whose connections are served by at most ``max_threads`` threads."""

    allow_reuse_address = True
    request_queue_size = 128  # listen backlog

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        max_threads: int,
        max_queued: int,
        timeout_s: float,
    ) -> None:
        super().__init__(address, handler)
        self.max_threads, self.max_queued, self.timeout_s = max_threads, max_queued, timeout_s
        self._queue: queue.SimpleQueue[tuple[Any, Any, float] | None] = queue.SimpleQueue()
        self._open_lock = threading.Lock()
        self.open_connections = 0  # accepted and not yet closed (served or waiting)
        self.threads: list[threading.Thread] = []  # started on demand, at most max_threads
        self._idle = 0  # threads waiting for a connection
        self.quiet = True

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            full = self.open_connections >= self.max_threads + self.max_queued
            if not full:
                self.open_connections += 1
                self._queue.put((request, client_address, time.monotonic()))
                if self._idle == 0 and len(self.threads) < self.max_threads:
                    self._start_thread()
        if full:
            turn_away(request)
            self.shutdown_request(request)

    def _start_thread(self) -> None:
        # daemon threads, as ThreadingHTTPServer's: a kept-alive browser connection must not
        # hold the process open after Ctrl-C
        name = f"goalrl-http-{len(self.threads)}"
        thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            with self._open_lock:
                self._idle += 1
            item = self._queue.get()
            with self._open_lock:
                self._idle -= 1
            if item is None:
                return
            self._serve_connection(*item)

    def _serve_connection(self, request: Any, client_address: Any, accepted: float) -> None:
        try:
            # the silence allowed counts from the accept: a half-sent request that waited in
            # the queue is dropped soon after it gets a thread (a complete one is read at once)
            waited = time.monotonic() - accepted
            request.settimeout(max(MIN_QUEUED_TIMEOUT_S, self.timeout_s - waited))
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._open_lock:
                self.open_connections -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.quiet:
            super().handle_error(request, client_address)

    def server_close(self) -> None:
        super().server_close()
        for _ in self.threads:
            self._queue.put(None)


class TimedRequestHandler(BaseHTTPRequestHandler):
    """Gives each request on a kept-alive connection the full silence allowance."""

    server: PooledHTTPServer

    def handle_one_request(self) -> None:
        super().handle_one_request()
        self.connection.settimeout(self.server.timeout_s)


def turn_away(request: Any) -> None:
    """A 503 to a connection over the queue limit, without waiting on a slow reader."""
    body = b'{"error": "the server is at its connection limit; try again"}'
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
    )
    try:
        request.setblocking(False)
        request.send(head.encode() + body)
    except OSError:
        pass  # the client is gone or its buffer is full: closing is all that is left
