"""The daemon's HTTP server: /healthz, Prometheus /metrics and (with a Site) the station's page and API.

Starlette routes served by uvicorn in a thread of the daemon's process. The socket is bound here,
before the server starts, so a port in use is one clear error. Caps: concurrent connections
(uvicorn's limit_concurrency: 503 beyond), request body size (413), and a deadline for a request's
head so a half-sent request does not hold a connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from birdstream.config import HttpConfig
from birdstream.errors import BirdstreamError
from birdstream.service.supervisor import HealthSnapshot

log = logging.getLogger(__name__)

HEAD_TIMEOUT_S = 10.0  # an idle or half-sent request does not hold a connection for ever


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose first request head does not arrive in time."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timeout)

    def _head_timeout(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            log.debug("http: closing a connection that sent no complete request in %g s", HEAD_TIMEOUT_S)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_timer.cancel()
        super().connection_lost(exc)


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before the app reads it."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(self.limit)(scope, receive, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge()
            return message

        await self.app(scope, limited, send)  # the app's handler for _TooLarge answers 413


class _TooLarge(Exception):
    """Raised into the app while it reads a body (chunked, no Content-Length) that grows over the cap."""


def _too_large(limit: int) -> Response:
    return JSONResponse({"error": f"request body over {limit} bytes"}, status_code=413)


async def _too_large_handler(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "request body too large"}, status_code=413)


def _service_routes(health: Callable[[], HealthSnapshot]) -> list[Route]:
    def healthz(request: Request) -> Response:
        snap = health()
        body = (json.dumps(snap.to_json()) + "\n").encode()
        return Response(body, status_code=200 if snap.healthy else 503, media_type="application/json")

    def metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [Route("/healthz", healthz), Route("/metrics", metrics)]


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/") or request.url.path.startswith("/snapshots/"):
        return JSONResponse({"error": f"not found: {request.url.path[:200]}"}, status_code=404)
    return PlainTextResponse("not found: try /, /healthz or /metrics\n", status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"method {request.method} not allowed here"}, status_code=405)


def build_app(health: Callable[[], HealthSnapshot], site: Any = None, max_body_bytes: int = 65_536) -> Any:
    """The ASGI app: service routes, plus the page and API when a web ``Site`` is given."""
    routes = _service_routes(health)
    handlers: dict[Any, Any] = {404: _not_found, 405: _not_allowed, _TooLarge: _too_large_handler}
    if site is not None:
        from birdstream.web import app as web

        routes += web.routes(site)
        handlers.update(web.EXCEPTION_HANDLERS)
    return _BodyLimit(Starlette(routes=routes, exception_handlers=handlers), max_body_bytes)


class HttpEndpoint:
    """The server in its own thread; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, host: str, port: int, health: Callable[[], HealthSnapshot], *, site: Any = None,
                 max_connections: int = 64, max_body_bytes: int = 65_536) -> None:
        self._sock = _bind(host, port)
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        self._site = site
        # uvicorn counts the asking connection itself against limit_concurrency, hence the + 1.
        config = uvicorn.Config(
            build_app(health, site, max_body_bytes), lifespan="off", log_config=None, access_log=False,
            http=_Protocol, ws="none", limit_concurrency=max_connections + 1, timeout_keep_alive=5,
            timeout_graceful_shutdown=2, server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except Exception:  # noqa: BLE001 - the page is lost, the daemon goes on; health shows it
            log.exception("http server failed")

    def start(self) -> HttpEndpoint:
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its start/stop chatter
        self._thread.start()
        log.info("serving %s/healthz and /metrics on http://%s:%d",
                 "the station's page, its API, " if self._site is not None else "", self.host, self.port)
        return self

    def close(self) -> None:
        if self._site is not None:
            self._site.stopping.set()  # live pages end their event streams
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> HttpEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise BirdstreamError(f"http: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def start_http(config: HttpConfig, health: Callable[[], HealthSnapshot], site: Any = None) -> HttpEndpoint | None:
    """Start the endpoint when http.enabled (else None); pass ``supervisor.snapshot`` as *health*."""
    if not config.enabled:
        return None
    return HttpEndpoint(config.host, config.port, health, site=site, max_connections=config.max_connections,
                        max_body_bytes=config.max_body_bytes).start()
