"""Camtrap DP 1.0.2 data packages (TDWG): datapackage.json, deployments.csv, media.csv, observations.csv.

Inputs are plain records: deployment facts per camera, the media files, and sightings in the form of
the sighting payload (INTERFACE.md section 4) or the store's `S` (section 6), each with its camera.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from birdstream.errors import ConfigError
from birdstream.export.taxonomy import Taxonomy

log = logging.getLogger(__name__)

VERSION = "1.0.2"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE_URL = f"{BASE_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")

DEPLOYMENT_FIELDS = ("deploymentID", "locationID", "locationName", "latitude", "longitude", "coordinateUncertainty",
                     "deploymentStart", "deploymentEnd", "setupBy", "cameraID", "cameraModel", "cameraDelay",
                     "cameraHeight", "cameraDepth", "cameraTilt", "cameraHeading", "detectionDistance",
                     "timestampIssues", "baitUse", "featureType", "habitat", "deploymentGroups", "deploymentTags",
                     "deploymentComments")
MEDIA_FIELDS = ("mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic", "fileName",
                "fileMediatype", "exifData", "favorite", "mediaComments")
OBSERVATION_FIELDS = ("observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd",
                      "observationLevel", "observationType", "cameraSetupType", "scientificName", "count",
                      "lifeStage", "sex", "behavior", "individualID", "individualPositionRadius",
                      "individualPositionAngle", "individualSpeed", "bboxX", "bboxY", "bboxWidth", "bboxHeight",
                      "classificationMethod", "classifiedBy", "classificationTimestamp",
                      "classificationProbability", "observationTags", "observationComments")


class CamtrapError(ConfigError):
    """A package that cannot be written: a missing deployment fact or an unwritable folder."""


@dataclass(frozen=True)
class Place:
    """What the standard wants to know about one camera; None where not configured."""

    latitude: float | None = None
    longitude: float | None = None
    location_name: str | None = None
    camera_model: str | None = None
    camera_height_m: float | None = None
    active_from: float | None = None  # epoch seconds; None = from the first file or sighting
    active_until: float | None = None
    where: str = "deployment"  # how the user sets these facts, for the error line


@dataclass(frozen=True)
class MediaFile:
    deployment: str
    path: str  # absolute file path, or a URL
    timestamp: float  # epoch seconds of capture (a video: of its first frame)
    mediatype: str  # image/jpeg, video/mp4, ...
    sightings: int = 0  # sightings seen in it (0 = blank)


@dataclass(frozen=True)
class Sighting:
    id: str
    deployment: str
    species: str
    score: float
    start: float
    end: float
    model: str
    box: Sequence[float] | None = None


def iso(t: float) -> str:
    """The standard's datetime form (%Y-%m-%dT%H:%M:%S%z), in UTC."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_package(out: Path, *, station: str, places: dict[str, Place], media: Iterable[MediaFile],
                  sightings: Iterable[Sighting], taxonomy: Taxonomy, created: float) -> dict[str, int]:
    """Write the package into ``out``; returns the row count of each table."""
    media = sorted(media, key=lambda m: (m.deployment, m.timestamp, m.path))
    sightings = sorted(sightings, key=lambda s: (s.start, s.id))
    periods = _periods(media, sightings)
    for camera in periods:
        _check_place(camera, places.get(camera))
    try:
        out.mkdir(parents=True, exist_ok=True)
        media_ids = _write_media(out, media)
        observations = _write_observations(out, media, media_ids, sightings, taxonomy)
        _write_deployments(out, places, periods)
        _write_descriptor(out, station, places, periods, sightings, taxonomy, created)
    except OSError as exc:
        raise CamtrapError(f"{out}: cannot write the Camtrap DP package ({exc.strerror or exc})") from None
    return {"deployments": len(periods), "media": len(media_ids), "observations": observations}


def _periods(media: Sequence[MediaFile], sightings: Sequence[Sighting]) -> dict[str, tuple[float, float]]:
    spans: dict[str, tuple[float, float]] = {}
    times = [(m.deployment, m.timestamp) for m in media]
    times += [(s.deployment, t) for s in sightings for t in (s.start, s.end)]
    for camera, t in times:
        lo, hi = spans.get(camera, (t, t))
        spans[camera] = (min(lo, t), max(hi, t))
    return dict(sorted(spans.items()))


def _check_place(camera: str, place: Place | None) -> None:
    place = place or Place()
    for name, value in (("latitude", place.latitude), ("longitude", place.longitude)):
        if value is None:
            raise CamtrapError(f"{place.where}.{name}: needed for the Camtrap DP deployment of camera {camera!r} "
                               "(set it in the config, or --lat/--lon for classify)")


def _rows(path: Path, fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
            n += 1
    return n


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _write_deployments(out: Path, places: dict[str, Place], periods: dict[str, tuple[float, float]]) -> None:
    rows = []
    for camera, (start, end) in periods.items():
        place = places[camera]
        # The configured period, widened where files or sightings fall outside it (a clock set wrong).
        start = min(start, place.active_from) if place.active_from is not None else start
        end = max(end, place.active_until) if place.active_until is not None else end
        rows.append({"deploymentID": camera, "locationName": place.location_name, "latitude": place.latitude,
                     "longitude": place.longitude, "deploymentStart": iso(start), "deploymentEnd": iso(end),
                     "cameraID": camera, "cameraModel": place.camera_model, "cameraHeight": place.camera_height_m})
    _rows(out / "deployments.csv", DEPLOYMENT_FIELDS, rows)


def media_path(out: Path, path: str) -> str:
    """Relative to the package when the file is inside it, else its URL (the standard forbids '..' paths)."""
    if "://" in path:
        return path
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path(os.path.abspath(out))).as_posix()
    except ValueError:
        return absolute.as_uri()


def _media_id(m: MediaFile) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{m.deployment}\n{m.path}"))


def _write_media(out: Path, media: Sequence[MediaFile]) -> dict[str, str]:
    ids: dict[str, str] = {}
    rows = []
    for m in media:
        media_id = _media_id(m)
        if media_id in ids.values():
            continue
        ids[m.path] = media_id
        rows.append({"mediaID": media_id, "deploymentID": m.deployment, "captureMethod": "activityDetection",
                     "timestamp": iso(m.timestamp), "filePath": media_path(out, m.path), "filePublic": False,
                     "fileName": Path(m.path).name, "fileMediatype": m.mediatype})
    _rows(out / "media.csv", MEDIA_FIELDS, rows)
    return ids


def _observation(s: Sighting, taxonomy: Taxonomy) -> dict[str, Any]:
    taxon = taxonomy.lookup(s.species)
    row: dict[str, Any] = {
        "observationID": s.id, "deploymentID": s.deployment, "eventID": s.id, "eventStart": iso(s.start),
        "eventEnd": iso(s.end), "observationLevel": "event", "observationType": "animal",
        "scientificName": taxon.scientific_name if taxon else None, "count": 1,
        "classificationMethod": "machine", "classifiedBy": s.model,
        "classificationProbability": round(min(max(float(s.score), 0.0), 1.0), 4),
        "observationTags": f"vernacularName:{s.species}",
    }
    if s.box is not None and len(s.box) == 4 and s.box[2] > 0 and s.box[3] > 0:
        row.update(zip(("bboxX", "bboxY", "bboxWidth", "bboxHeight"), (round(float(v), 6) for v in s.box)))
    return row


def _write_observations(out: Path, media: Sequence[MediaFile], media_ids: dict[str, str],
                        sightings: Sequence[Sighting], taxonomy: Taxonomy) -> int:
    rows = [_observation(s, taxonomy) for s in sightings]
    for m in media:  # a file with no sighting in it is a blank, said at media level
        if m.sightings == 0 and m.path in media_ids:
            rows.append({"observationID": f"{media_ids[m.path]}-blank", "deploymentID": m.deployment,
                         "mediaID": media_ids[m.path], "eventStart": iso(m.timestamp), "eventEnd": iso(m.timestamp),
                         "observationLevel": "media", "observationType": "blank", "classificationMethod": "machine",
                         "classifiedBy": next((s.model for s in sightings), None)})
    return _rows(out / "observations.csv", OBSERVATION_FIELDS, rows)


def _taxonomic(sightings: Sequence[Sighting], taxonomy: Taxonomy) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for s in sightings:
        taxon = taxonomy.lookup(s.species)
        if taxon is not None and taxon.scientific_name not in seen:
            seen[taxon.scientific_name] = {"scientificName": taxon.scientific_name, "taxonRank": taxon.rank,
                                           "vernacularNames": {"eng": taxon.common_name}}
    return [seen[k] for k in sorted(seen)]


def _spatial(places: dict[str, Place], cameras: Iterable[str]) -> dict[str, Any]:
    points = sorted({(places[c].longitude, places[c].latitude) for c in cameras})
    if len(points) == 1:
        return {"type": "Point", "coordinates": list(points[0])}
    return {"type": "MultiPoint", "coordinates": [list(p) for p in points]}


def _write_descriptor(out: Path, station: str, places: dict[str, Place], periods: dict[str, tuple[float, float]],
                      sightings: Sequence[Sighting], taxonomy: Taxonomy, created: float) -> None:
    starts = [lo for lo, _ in periods.values()] or [created]
    ends = [hi for _, hi in periods.values()] or [created]
    models = sorted({s.model for s in sightings})
    descriptor = {
        "resources": [{"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource", "format": "csv",
                       "mediatype": "text/csv", "encoding": "utf-8",
                       "schema": f"{BASE_URL}/{name}-table-schema.json"} for name in TABLES],
        "profile": PROFILE_URL,
        "name": f"birdstream-{station}",
        "id": str(uuid.uuid4()),
        "created": iso(created),
        "title": f"birdstream sightings at station {station}",
        "contributors": [{"title": f"birdstream station {station}", "role": "contributor"}],
        "sources": [{"title": "birdstream", "version": ", ".join(models) or "unknown"}],
        "project": {"title": f"birdstream station {station}", "samplingDesign": "opportunistic",
                    "captureMethod": ["activityDetection"], "individualAnimals": False,
                    "observationLevel": ["media", "event"]},
        "spatial": _spatial(places, periods) if periods else {"type": "GeometryCollection", "geometries": []},
        "temporal": {"start": iso(min(starts))[:10], "end": iso(max(ends))[:10]},
        "taxonomic": _taxonomic(sightings, taxonomy),
    }
    (out / "datapackage.json").write_text(json.dumps(descriptor, indent=2) + "\n", encoding="utf-8")
