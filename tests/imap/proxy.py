"""TCP relays on loopback that inject faults between the gateway and Dovecot.

``CuttingProxy`` drops the connection at a chosen point of a transfer, as
a network failure would. ``FetchRejectingProxy`` rejects the FETCH of one
message with NO, as a server does for a message it cannot deliver.
``CommandHookProxy`` runs a function just before one command reaches the
server, such as new mail arriving while a poll is in progress.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


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


class FetchRejectingProxy:
    """Relay 127.0.0.1:port to an upstream port; reject a FETCH of ``uid`` with NO.

    A UID FETCH whose UID set names ``uid`` does not reach the server: the
    proxy sends a tagged NO for it, as a server does for a message it
    cannot convert to RFC 822. Every other line passes through unchanged.
    """

    def __init__(self, upstream_port: int, uid: int) -> None:
        self.upstream_port = upstream_port
        self.uid = uid
        self.rejected = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            lock = threading.Lock()
            threading.Thread(
                target=self._commands, args=(client, upstream, lock), daemon=True
            ).start()
            threading.Thread(
                target=self._responses, args=(upstream, client, lock), daemon=True
            ).start()

    def _names_uid(self, line: bytes) -> bool:
        words = line.split()
        if len(words) < 4 or [w.upper() for w in words[1:3]] != [b"UID", b"FETCH"]:
            return False
        return str(self.uid).encode() in words[3].split(b",")

    def _commands(
        self, client: socket.socket, upstream: socket.socket, lock: threading.Lock
    ) -> None:
        reader = client.makefile("rb")
        try:
            for line in reader:
                if self._names_uid(line):
                    self.rejected += 1
                    tag = line.split()[0]
                    with lock:
                        client.sendall(tag + b" NO [SERVERBUG] Cannot convert\r\n")
                    continue
                upstream.sendall(line)
        except OSError:
            pass
        _close(client, upstream)

    def _responses(
        self, upstream: socket.socket, client: socket.socket, lock: threading.Lock
    ) -> None:
        try:
            while data := upstream.recv(4096):
                with lock:
                    client.sendall(data)
        except OSError:
            pass
        _close(upstream, client)

    def close(self) -> None:
        self._listener.close()


class CommandHookProxy:
    """Relay 127.0.0.1:port to an upstream port; call ``hook`` before a command.

    The first client line that contains ``word`` waits until ``hook`` has
    returned and is then passed on. Every other line passes through unchanged.
    """

    def __init__(self, upstream_port: int, word: bytes, hook: Callable[[], object]):
        self.upstream_port = upstream_port
        self.word = word
        self.hook = hook
        self.calls = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(
                target=self._commands, args=(client, upstream), daemon=True
            ).start()
            threading.Thread(
                target=self._responses, args=(upstream, client), daemon=True
            ).start()

    def _commands(self, client: socket.socket, upstream: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            for line in reader:
                if self.calls == 0 and self.word in line:
                    self.calls += 1
                    self.hook()
                upstream.sendall(line)
        except OSError:
            pass
        _close(client, upstream)

    def _responses(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(4096):
                client.sendall(data)
        except OSError:
            pass
        _close(upstream, client)

    def close(self) -> None:
        self._listener.close()


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
