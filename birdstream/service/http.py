"""Optional HTTP endpoint: /healthz (200/503 from the supervisor's health) and Prometheus /metrics."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from birdstream.config import HttpConfig
from birdstream.errors import BirdstreamError
from birdstream.service.supervisor import HealthSnapshot

log = logging.getLogger(__name__)


class HttpEndpoint:
    """A small threaded HTTP server; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, host: str, port: int, health: Callable[[], HealthSnapshot]) -> None:
        handler = type("Handler", (_Handler,), {"health": staticmethod(health)})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise BirdstreamError(f"http: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> HttpEndpoint:
        self._thread.start()
        log.info("serving /healthz and /metrics on http://%s:%d", self.host, self.port)
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> HttpEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_http(config: HttpConfig, health: Callable[[], HealthSnapshot]) -> HttpEndpoint | None:
    """Start the endpoint when http.enabled (else None); pass ``supervisor.snapshot`` as *health*."""
    if not config.enabled:
        return None
    return HttpEndpoint(config.host, config.port, health).start()


class _Handler(BaseHTTPRequestHandler):
    health: Callable[[], HealthSnapshot]
    server_version = "birdstream"
    timeout = 10  # an idle or half-sent request does not hold a thread for ever

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            snap = self.health()
            body = (json.dumps(snap.to_json()) + "\n").encode()
            self._reply(200 if snap.healthy else 503, "application/json", body)
        elif path == "/metrics":
            self._reply(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

    def _reply(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base class)
        log.debug("http %s " + format, self.address_string(), *args)
