"""A TCP relay on loopback that can cut a connection after some bytes.

It stands between the gateway and Dovecot so a test can drop the
connection at a chosen point of a transfer, as a network failure would.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttingProxy:
    """Relay 127.0.0.1:port to an upstream port; cut after ``limit`` bytes down.

    Each accepted connection counts the bytes the upstream server sends.
    Once a connection has passed ``limit`` of them, both of its sockets are
    shut down in the middle of whatever was being sent.
    """

    def __init__(self, upstream_port: int, limit: int) -> None:
        self.upstream_port = upstream_port
        self.limit = limit
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(
                target=self._pump, args=(client, upstream, None), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, self.limit), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, target: socket.socket, limit: int | None
    ) -> None:
        passed = 0
        try:
            while True:
                data = source.recv(4096)
                if not data:
                    break
                if limit is not None and passed + len(data) > limit:
                    target.sendall(data[: limit - passed])
                    self.cuts += 1
                    break
                target.sendall(data)
                passed += len(data)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
