"""Connections of ``goalrl serve``: request heads gathered by one thread, a bounded pool.

The standard ``ThreadingHTTPServer`` starts one thread per connection, without limit, never
times a client out and listens with a backlog of 5: 300 half-sent requests held 300 threads
and 50 parallel uploads got 18 to 31 connection resets. Here:

- one gate thread (``HeadGate``, a selector) gathers each request's head (request line and
  headers) without blocking on anyone; a client whose head is not complete ``timeout_s``
  after it connected, or longer than 64 KB, is dropped. Half-sent requests, however many
  (up to ``max_pending``), cost a socket each and no thread;
- a complete head goes to a pool of at most ``max_threads`` threads (more wait in a queue;
  past ``max_queued`` they get a 503). A thread waits at most ``timeout_s`` on each read of
  a body or of the next request on a kept-alive connection;
- the listen backlog is 128.

Measured under load in docs/benchmarks/command.md (``python bench/command.py load``).
"""

from __future__ import annotations

import io
import queue
import selectors
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

MAX_HEAD_BYTES = 64 * 1024  # request line + headers
HEAD_END = b"\r\n\r\n"


class PooledHTTPServer(HTTPServer):
    """``HTTPServer`` whose requests are served by at most ``max_threads`` threads, each
    handed a connection only once its request head has arrived in full."""

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
        max_pending: int = 1024,
    ) -> None:
        super().__init__(address, handler)
        self.max_threads, self.max_queued, self.timeout_s = max_threads, max_queued, timeout_s
        self._queue: queue.SimpleQueue[tuple[Any, Any, bytes] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.handed_off = 0  # connections with a complete head: served or waiting for a thread
        self.threads: list[threading.Thread] = []  # started on demand, at most max_threads
        self._idle = 0  # pool threads waiting for a connection
        self.gate = HeadGate(self, max_pending)
        self.quiet = True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Called by ``serve_forever`` for each accepted connection: to the gate."""
        if not self.gate.add(request, client_address):
            turn_away(request)
            self.shutdown_request(request)

    def hand_off(self, request: Any, client_address: Any, head: bytes) -> None:
        """A connection whose request head ``head`` is complete, to the pool."""
        with self._lock:
            full = self.handed_off >= self.max_threads + self.max_queued
            if not full:
                self.handed_off += 1
                self._queue.put((request, client_address, head))
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
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
            if item is None:
                return
            request, client_address, head = item
            try:
                request.settimeout(self.timeout_s)  # blocking reads, each at most timeout_s
                self.RequestHandlerClass(request, client_address, self, head=head)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                with self._lock:
                    self.handed_off -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.quiet:
            super().handle_error(request, client_address)

    def server_close(self) -> None:
        super().server_close()
        self.gate.close()
        for _ in self.threads:
            self._queue.put(None)


class HeadGate:
    """One thread that reads request heads from many connections at once (a selector)."""

    def __init__(self, server: PooledHTTPServer, max_pending: int) -> None:
        self.server = server
        self.max_pending = max_pending
        self._selector = selectors.DefaultSelector()
        self._new: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()  # wakes the selector for new sockets
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self.pending: dict[Any, tuple[Any, bytearray, float]] = {}  # sock -> addr, head, deadline
        self._count_lock = threading.Lock()
        self._count = 0  # connections added and not yet handed off or dropped
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def start_once(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="goalrl-http-gate")
                self._thread.daemon = True
                self._thread.start()

    def add(self, sock: Any, client_address: Any) -> bool:
        """Watch ``sock`` until its request head is complete; False when too many wait."""
        with self._count_lock:
            if self._count >= self.max_pending:
                return False
            self._count += 1
        self.start_once()
        self._new.put((sock, client_address))
        self._wake_w.send(b"\0")
        return True

    def _run(self) -> None:
        while not self._closed.is_set():
            for key, _ in self._selector.select(timeout=0.25):
                if key.data is None:
                    self._take_new()
                else:
                    self._read(key.fileobj)
            self._expire()

    def _take_new(self) -> None:
        try:
            self._wake_r.recv(4096)
        except BlockingIOError:
            pass
        while True:
            try:
                sock, address = self._new.get_nowait()
            except queue.Empty:
                return
            sock.setblocking(False)
            self.pending[sock] = (address, bytearray(), time.monotonic() + self.server.timeout_s)
            self._selector.register(sock, selectors.EVENT_READ, address)

    def _read(self, sock: Any) -> None:
        address, head, _ = self.pending[sock]
        try:
            data = sock.recv(MAX_HEAD_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        head += data
        if not data or len(head) > MAX_HEAD_BYTES:
            self._drop(sock)  # gone, or a head no browser sends
        elif HEAD_END in head or b"\n\n" in head:  # http.server also takes bare newlines
            self._forget(sock)
            sock.setblocking(True)
            self.server.hand_off(sock, address, bytes(head))

    def _expire(self) -> None:
        now = time.monotonic()
        for sock in [s for s, (_, _, deadline) in self.pending.items() if deadline < now]:
            self._drop(sock)  # no complete head within timeout_s of connecting

    def _forget(self, sock: Any) -> None:
        self._selector.unregister(sock)
        del self.pending[sock]
        with self._count_lock:
            self._count -= 1

    def _drop(self, sock: Any) -> None:
        self._forget(sock)
        self.server.shutdown_request(sock)

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock in list(self.pending):
            self._drop(sock)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


class PrefixedSocketIO(io.RawIOBase):
    """A socket's byte stream with the bytes the gate already read put back in front."""

    def __init__(self, prefix: bytes, sock: Any) -> None:
        self._prefix = memoryview(prefix)
        self._raw = socket.SocketIO(sock, "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(self._prefix):
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class GatedRequestHandler(BaseHTTPRequestHandler):
    """Reads the head the gate gathered first, then the socket."""

    server: PooledHTTPServer

    def __init__(self, request: Any, client_address: Any, server: Any, *, head: bytes) -> None:
        self._head = head
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain socket file: replaced by one that starts with the head
        self.rfile = io.BufferedReader(PrefixedSocketIO(self._head, self.connection))


def turn_away(request: Any) -> None:
    """A 503 to a connection over a limit, without waiting on a slow reader."""
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
