"""A real HTTP server on a free loopback port serving a folder, plus a live MJPEG endpoint.

`/mjpeg` streams multipart/x-mixed-replace JPEG frames (like many IP cameras) until the client
goes or the server stops. Used to test http(s) sources: plain files, HLS playlists, MJPEG.
"""

from __future__ import annotations

import base64
import functools
import io
import ssl
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image


class _Handler(SimpleHTTPRequestHandler):
    mjpeg_fps = 10.0
    stop_event: threading.Event
    server_log: list[tuple[str, str | None]]  # (path, Authorization header) of every request
    basic_auth: str | None = None  # "user:password" the server asks for, or None

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        given = self.headers.get("Authorization")
        self.server_log.append((self.path, given))
        if self.basic_auth is not None and given != "Basic " + base64.b64encode(self.basic_auth.encode()).decode():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/mjpeg"):
            self._mjpeg()
        else:
            super().do_GET()

    def _mjpeg(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace;boundary=frame")
        self.end_headers()
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        i = 0
        try:
            while not self.stop_event.is_set():
                buf = io.BytesIO()
                img = base.copy()
                img[:, (i % 8) * 8 : (i % 8) * 8 + 8] = 255
                Image.fromarray(img).save(buf, format="JPEG", quality=80)
                data = buf.getvalue()
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                self.wfile.write(f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                i += 1
                self.stop_event.wait(1.0 / self.mjpeg_fps)
        except (BrokenPipeError, ConnectionResetError):
            pass


class HttpMediaServer:
    """Serves `root` at http://127.0.0.1:<port>/ on a background thread; use as a context manager."""

    def __init__(self, root: str | Path, *, tls: tuple[Path, Path] | None = None,
                 basic_auth: str | None = None) -> None:
        """`tls`: (certificate, key) PEM files: serve https; `basic_auth`: "user:password" to ask for."""
        self.root = Path(root)
        self._stop = threading.Event()
        self.requests: list[tuple[str, str | None]] = []
        attrs = {"stop_event": self._stop, "server_log": self.requests, "basic_auth": basic_auth}
        handler = functools.partial(type("H", (_Handler,), attrs), directory=str(self.root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http-media", daemon=True)

    def url(self, path: str, userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"{self.scheme}://{at}127.0.0.1:{self.port}/{path.lstrip('/')}"

    def __enter__(self) -> HttpMediaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)
