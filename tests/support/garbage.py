"""A "camera" that answers every TCP connection with random bytes: a broken device on the RTSP port."""

from __future__ import annotations

import os
import socket
import threading


class GarbageServer:
    """Listens on 127.0.0.1:<port>; each client gets ``size`` random bytes, then the connection closes."""

    def __init__(self, size: int = 64 * 1024) -> None:
        self.size = size
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="garbage-server", daemon=True)

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                try:
                    conn.sendall(os.urandom(self.size))
                except OSError:
                    pass

    def __enter__(self) -> GarbageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
