"""The station's page (``/``), one species' page and the snapshots: server-rendered HTML."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from birdstream.publish.store_query import Filter
from birdstream.web.api import error
from birdstream.web.site import Site, check_params, cursor_param, day_bounds, day_param

_ENV = Environment(loader=PackageLoader("birdstream.web", "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
CARDS_PER_DAY = 120
SPECIES_DAYS = 30
_SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9._/-]{1,300}$")


def _local_offset() -> float:
    offset = datetime.now().astimezone().utcoffset()
    return offset.total_seconds() if offset else 0.0


def _hhmm(text: str | None) -> str:
    if not text:
        return ""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")


_ENV.filters["hhmm"] = _hhmm


def _render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_ENV.get_template(template).render(**context), status_code=status_code,
                        headers={"Cache-Control": "no-store"})


def _stream_cards(site: Site) -> list[dict[str, Any]]:
    out = []
    for status in sorted(site.streams(), key=lambda s: s.stream_id):
        latest = None
        if site.reader is not None:
            rows, _ = site.reader.sightings(Filter(stream=status.stream_id), limit=1)
            latest = rows[0] if rows else None
        out.append({"stream": status.stream_id, **status.to_payload(), "latest": latest})
    return out


def index(site: Site, request: Request) -> Response:
    params = request.query_params
    check_params(params, ("date", "before"))
    today = date.today()
    day = day_param(params, today)
    before = cursor_param(params)
    since, until = day_bounds(day)
    cards: list[dict[str, Any]] = []
    more: str | None = None
    grid: dict[str, list[int]] = {}
    counts: list[dict[str, Any]] = []
    if site.reader is not None:
        cards, more = site.reader.sightings(Filter(since=since, until=until), CARDS_PER_DAY, before)
        grid = site.reader.hour_grid(since, until, _local_offset())
        counts = [{"species": name, "count": sum(row)} for name, row in grid.items()]  # the grid's row sums
    peak = max((n for row in grid.values() for n in row), default=0)
    return _render(
        "index.html", station=site.station, day=day, today=today, live=day == today,
        prev_day=day - timedelta(days=1), next_day=day + timedelta(days=1) if day < today else None,
        cards=cards, more=more, grid=grid, peak=peak, counts=counts, streams=_stream_cards(site),
        can_review=site.policy.may_offer and site.reader is not None, species_names=site.species_names,
        store_on=site.reader is not None,
    )


def species_page(site: Site, request: Request) -> Response:
    check_params(request.query_params, ())
    name = request.path_params["name"]
    if site.reader is None:
        return error(503, "the sightings store is off (store.enabled: false)")
    summary = next(iter(site.reader.species(name=name)), None)
    if summary is None:
        return _render("species.html", station=site.station, name=name, summary=None, days=[], peak=0, best=[],
                       status_code=404)
    first_day = date.today() - timedelta(days=SPECIES_DAYS - 1)
    since, _ = day_bounds(first_day)
    counts = site.reader.per_day(name, since, SPECIES_DAYS, _local_offset())
    days = [(first_day + timedelta(days=i), n) for i, n in enumerate(counts)]
    return _render("species.html", station=site.station, name=name, summary=summary, days=days,
                   peak=max(counts, default=0), best=site.reader.best(name))


def snapshot(site: Site, request: Request) -> Response:
    """A JPEG under state_dir/snapshots; anything else (``..``, links out, other files) is 404."""
    rel = request.path_params["path"]
    base = site.snapshots_dir.resolve()
    if not _SNAPSHOT_NAME.match(rel) or ".." in rel.split("/") or not rel.lower().endswith((".jpg", ".jpeg")):
        return error(404, "no such snapshot")
    path = (base / rel).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return error(404, "no such snapshot")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})


def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ("app.js", "style.css"):
        return error(404, "no such file")
    path = Path(__file__).parent / "static" / name
    media = "text/javascript" if name.endswith(".js") else "text/css"
    return FileResponse(path, media_type=f"{media}; charset=utf-8", headers={"Cache-Control": "max-age=3600"})

