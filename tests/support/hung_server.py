# SPDX-License-Identifier: Apache-2.0
"""A server that accepts, reads and never answers, and records when the
client closes each connection: what a test of cancellation watches.

Bound to 127.0.0.1 on a free port; one thread with a selector, every wait
bounded; ``stop()`` closes what is left::

    with HungServer() as server:
        start_a_call(server.url)
        assert server.wait_requests(1, timeout=10)
        cancel_it()
        assert server.wait_closed(1, timeout=5)
"""
from __future__ import annotations

import selectors
import socket
import threading
import time


class HungServer:
    """Accepts connections and reads requests, never answers. Counts the
    requests (a request is counted at its first bytes) and the connections
    the client closed, with the time of each close."""

    __test__ = False

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._changed = threading.Condition()
        self._requests = 0
        self._closed_at: list[float] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/"

    @property
    def requests(self) -> int:
        with self._changed:
            return self._requests

    @property
    def closed_at(self) -> list[float]:
        """``time.monotonic()`` of each connection the client closed."""
        with self._changed:
            return list(self._closed_at)

    def wait_requests(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._requests >= count, timeout)

    def wait_closed(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self._closed_at) >= count, timeout)

    def __enter__(self) -> HungServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(5)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def _serve(self) -> None:
        fresh: set[socket.socket] = set()  # connections that sent nothing yet
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    conn, _ = sock.accept()
                    conn.setblocking(False)
                    self._selector.register(conn, selectors.EVENT_READ)
                    fresh.add(conn)
                    continue
                try:
                    data = sock.recv(1 << 16)
                except ConnectionResetError:
                    data = b""
                if data and sock in fresh:
                    fresh.discard(sock)
                    with self._changed:
                        self._requests += 1
                        self._changed.notify_all()
                elif not data:
                    self._selector.unregister(sock)
                    sock.close()
                    fresh.discard(sock)
                    with self._changed:
                        self._closed_at.append(time.monotonic())
                        self._changed.notify_all()
