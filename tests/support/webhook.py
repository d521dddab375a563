"""A real HTTP endpoint on a free loopback port that records what Apprise's json:// scheme POSTs.

``mode`` decides the answer: ``ok`` (200), ``fail`` (500) or ``hang`` (no answer until the server
stops). Every request is recorded (path, Authorization header, JSON body), answered or not.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(size)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                with hook._lock:
                    hook.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                          "body": body})
                if hook.mode == "hang":
                    hook._stop.wait(120)
                    return
                self.send_response(500 if hook.mode == "fail" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook", userinfo: str = "") -> str:
        """The Apprise json:// URL of this endpoint (json:// posts over plain http)."""
        return f"json://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}{path}"

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r["body"] for r in self.requests]

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
