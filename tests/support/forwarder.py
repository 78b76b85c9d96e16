"""A TCP forwarder between the service and its chain node, that a test can cut and restore.

While cut, every open connection is closed and new ones are closed as soon as they are accepted: to the
service, the node is unreachable (connection reset or refused), as in a real network outage.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

from app.dev.devchain import free_port


class TcpForwarder:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._cut = threading.Event()
        self._stopped = threading.Event()
        self._open: set[socket.socket] = set()
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._accept_forever, name="tcp-forwarder", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> TcpForwarder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._listener.close()
        self._close_all()
        self._thread.join(timeout=5)

    def cut(self) -> None:
        self._cut.set()
        self._close_all()

    def restore(self) -> None:
        self._cut.clear()

    def _accept_forever(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            client.close()
            return
        pair = (client, upstream)
        with self._guard:
            self._open.update(pair)
        try:
            while not self._cut.is_set() and not self._stopped.is_set():
                readable, _, _ = select.select(pair, [], [], 0.2)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)
        except OSError:
            return
        finally:
            with self._guard:
                self._open.difference_update(pair)
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.close()

    def _close_all(self) -> None:
        with self._guard:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
