"""The JSON API of INTERFACE.md section 6 and its Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from birdstream.publish.store_query import VERDICTS, Filter
from birdstream.web.site import (
    SIGHTING_ID,
    BadRequest,
    Site,
    check_params,
    cursor_param,
    limit_param,
    species_param,
    stream_param,
    time_param,
)

log = logging.getLogger(__name__)

SSE_QUEUE = 1000  # events held for one slow page before it is told to reload
SSE_KEEPALIVE_S = 15.0


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _no_store(site: Site) -> JSONResponse | None:
    return None if site.reader is not None else error(503, "the sightings store is off (store.enabled: false)")


def list_sightings(site: Site, request: Request) -> Response:
    params = request.query_params
    check_params(params, ("stream", "species", "since", "until", "limit", "before"))
    f = Filter(stream=stream_param(params), species=species_param(params),
               since=time_param(params, "since"), until=time_param(params, "until"))
    limit, before = limit_param(params), cursor_param(params)
    if (refused := _no_store(site)) is not None:
        return refused
    rows, cursor = site.reader.sightings(f, limit, before)
    return JSONResponse({"sightings": rows, "next": cursor})


def one_sighting(site: Site, request: Request) -> Response:
    check_params(request.query_params, ())
    sighting_id = request.path_params["id"]
    if (refused := _no_store(site)) is not None:
        return refused
    found = site.reader.sighting(sighting_id) if SIGHTING_ID.match(sighting_id) else None
    return JSONResponse(found) if found is not None else error(404, f"no sighting {sighting_id[:64]!r}")


def species(site: Site, request: Request) -> Response:
    params = request.query_params
    check_params(params, ("since", "until"))
    since, until = time_param(params, "since"), time_param(params, "until")
    if (refused := _no_store(site)) is not None:
        return refused
    return JSONResponse({"species": site.reader.species(since, until)})


def streams(site: Site, request: Request) -> Response:
    check_params(request.query_params, ())
    return JSONResponse({"streams": [{"stream": s.stream_id, **s.to_payload()} for s in site.streams()]})


def _verdict(body: Any, names: tuple[str, ...]) -> tuple[str, str | None]:
    if not isinstance(body, dict) or body.get("verdict") not in VERDICTS:
        raise BadRequest('the body must be {"verdict": "correct" | "false" | "relabel", "species": ...}')
    if set(body) - {"verdict", "species"}:
        raise BadRequest(f"unknown field(s) in the body: {', '.join(sorted(set(body) - {'verdict', 'species'}))}")
    if body["verdict"] != "relabel":
        return body["verdict"], None
    name = body.get("species")
    if not isinstance(name, str) or (names and name not in names):
        raise BadRequest(f"species: {str(name)[:80]!r} is not a species of the model")
    return "relabel", name


async def review(site: Site, request: Request) -> Response:
    refused = site.policy.check(request.headers)
    if refused is not None:
        headers = {"WWW-Authenticate": 'Basic realm="birdstream"'} if refused[0] == 401 else None
        return error(refused[0], refused[1], headers)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest("the body must be JSON (Content-Type: application/json)")
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    verdict, name = _verdict(body, site.species_names)
    sighting_id = request.path_params["id"]
    if (unavailable := _no_store(site)) is not None:
        return unavailable
    if not SIGHTING_ID.match(sighting_id):
        return error(404, f"no sighting {sighting_id[:64]!r}")
    s = await asyncio.to_thread(site.reader.review, sighting_id, verdict, name)
    if s is None:
        return error(404, f"no sighting {sighting_id[:64]!r}")
    site.publish_review(s["stream"], sighting_id, {"id": sighting_id, "verdict": verdict, "species": s["species"],
                                                    "label": s["label"], "station": s["station"]})
    return JSONResponse(s)


async def events(site: Site, request: Request) -> Response:
    check_params(request.query_params, ())
    if site.writer is None:
        return error(503, "the sightings store is off (store.enabled: false): no live events")
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(SSE_QUEUE)

    def deliver(batch: list[dict[str, Any]]) -> None:
        try:
            loop.call_soon_threadsafe(_offer, inbox, batch)
        except RuntimeError:  # the server's loop has ended: this page is gone
            site.writer.remove_listener(deliver)

    site.writer.add_listener(deliver)
    return StreamingResponse(_stream(site, request, inbox, deliver), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _offer(inbox: asyncio.Queue, batch: list[dict[str, Any]] | None) -> None:
    try:
        inbox.put_nowait(batch)
    except asyncio.QueueFull:
        pass  # this page fell behind; it reloads on the 'lagged' event it gets instead


async def _stream(site: Site, request: Request, inbox: asyncio.Queue, deliver: Any) -> AsyncIterator[bytes]:
    try:
        yield b"retry: 3000\n: connected\n\n"
        waited = 0.0
        while not site.stopping.is_set():
            try:
                batch = await asyncio.wait_for(inbox.get(), timeout=1.0)
            except asyncio.TimeoutError:
                waited += 1.0
                if waited >= SSE_KEEPALIVE_S:
                    waited = 0.0
                    yield b": keepalive\n\n"
                if await request.is_disconnected():
                    return
                continue
            if inbox.full():
                yield b"event: lagged\ndata: {}\n\n"
            for payload in batch or ():
                yield b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"
    finally:
        if site.writer is not None:
            site.writer.remove_listener(deliver)
