"""The web layer's routes and error handling, mounted by the service's HTTP server."""

from __future__ import annotations

import inspect
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from birdstream.web import api, pages
from birdstream.web.site import BadRequest, Site

log = logging.getLogger(__name__)


def _bind(handler: Callable[..., Any], site: Site) -> Callable[[Request], Any]:
    """A plain function of the request (Starlette runs sync ones in its thread pool)."""
    if inspect.iscoroutinefunction(handler):
        async def endpoint_async(request: Request) -> Response:
            return await handler(site, request)
        return endpoint_async

    def endpoint(request: Request) -> Response:
        return handler(site, request)
    return endpoint


def routes(site: Site) -> list[Route]:
    """The page, its assets and the API of INTERFACE.md section 6."""
    return [
        Route("/", _bind(pages.index, site)),
        Route("/species/{name}", _bind(pages.species_page, site)),
        Route("/snapshots/{path:path}", _bind(pages.snapshot, site)),
        Route("/static/{name}", pages.static),
        Route("/api/sightings", _bind(api.list_sightings, site)),
        Route("/api/sightings/{id}", _bind(api.one_sighting, site)),
        Route("/api/sightings/{id}/review", _bind(api.review, site), methods=["POST"]),
        Route("/api/species", _bind(api.species, site)),
        Route("/api/streams", _bind(api.streams, site)),
        Route("/api/events", _bind(api.events, site)),
    ]


async def bad_request(request: Request, exc: Exception) -> Response:
    return api.error(400, str(exc))


async def store_unreadable(request: Request, exc: Exception) -> Response:
    """The store is being rebuilt, or its disk failed: the page says so; the daemon goes on."""
    log.warning("sightings store not readable for %s (%s)", request.url.path[:200], exc)
    return api.error(503, f"the sightings store cannot be read now ({exc}); try again shortly")


EXCEPTION_HANDLERS = {BadRequest: bad_request, sqlite3.Error: store_unreadable}
