"""Tiny RTSP responders on real sockets: one that redirects every request elsewhere, one that asks
for Basic credentials and records every request it gets (what a camera password would reach)."""

from __future__ import annotations

import socket
import threading


class RtspResponder:
    """Answers each RTSP request on (host, free port) with `redirect_to` (302) or 401 Basic; records requests."""

    def __init__(self, host: str = "127.0.0.1", redirect_to: str | None = None) -> None:
        self.redirect_to = redirect_to
        self.requests: list[str] = []
        self._sock = socket.create_server((host, 0))
        self.host, self.port = host, self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="rtsp-responder", daemon=True)

    def url(self, path: str = "stream1", userinfo: str = "") -> str:
        return f"rtsp://{userinfo + '@' if userinfo else ''}{self.host}:{self.port}/{path}"

    def __enter__(self) -> RtspResponder:
        self._sock.settimeout(0.2)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        buf = b""
        with conn:
            try:
                while not self._stop.is_set():
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                    while b"\r\n\r\n" in buf:
                        head, buf = buf.split(b"\r\n\r\n", 1)
                        request = head.decode("latin-1")
                        self.requests.append(request)
                        cseq = next((line.split(":", 1)[1].strip() for line in request.split("\r\n")
                                     if line.lower().startswith("cseq:")), "1")
                        if self.redirect_to:
                            reply = f"RTSP/1.0 302 Found\r\nCSeq: {cseq}\r\nLocation: {self.redirect_to}\r\n\r\n"
                        else:
                            reply = (f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
                                     'WWW-Authenticate: Basic realm="camera"\r\n\r\n')
                        conn.sendall(reply.encode())
            except OSError:
                return
