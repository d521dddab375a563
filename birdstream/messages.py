"""The vocabulary passed between stages: Frame -> Prediction -> SightingEvent.

Pure data, no torch import. Stages are verbs (ingest, engine, track, publish); these are the nouns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from collections.abc import Mapping
from typing import Any, Literal, get_args

import numpy as np

SCHEMA_VERSION = 1

EventKind = Literal["start", "update", "end"]
StreamState = Literal["starting", "running", "reconnecting", "stopped", "failed"]
STREAM_STATES: tuple[StreamState, ...] = get_args(StreamState)  # the one list (metrics, HA discovery, schema)
FINAL_STATES: frozenset[StreamState] = frozenset({"stopped", "failed"})  # a source that ended or gave up


Box = tuple[float, float, float, float]  # [x, y, w, h] as fractions (0..1) of the full source frame


@dataclass(frozen=True, slots=True)
class Region:
    """One bird-sized part of a frame, cut at source resolution and resized to the model input."""

    box: Box  # the moving thing's box, fractions of the full source frame (before any roi)
    pixels: tuple[int, int, int, int]  # the box [x, y, w, h] in pixels of the picture it was cut from (the roi)
    image: np.ndarray  # uint8 [H, W, 3] RGB of the square crop around it, at the model's input size
    crop: np.ndarray | None = None  # uint8 RGB of that square crop at source resolution (snapshots)
    motion: float = 0.0  # fraction of the box that changed in this sample (0: held while still)


@dataclass(frozen=True, slots=True)
class Scene:
    """The whole picture a region was cut from, and the region's box on it (pixels): for snapshots."""

    picture: np.ndarray  # uint8 [h, w, 3] RGB of the roi at source resolution
    box: tuple[int, int, int, int]  # x, y, w, h in picture pixels


@dataclass(frozen=True, slots=True)
class Frame:
    """One sampled frame of one stream, already cropped (roi) and resized to the model input size."""

    stream_id: str
    seq: int  # per-stream counter of sampled frames, starts at 0
    image: np.ndarray  # uint8 [H, W, 3] RGB at the model's input size (e.g. 384x384)
    captured_at: float  # epoch seconds: wall clock of capture (live) or file time + media time
    media_time: float | None = None  # seconds from the start of the file; None for live sources
    source: str | None = None  # file path the frame came from (files and image folders), else None
    motion: float | None = None  # fraction of the scene that changed against the background, 0..1
    keepalive: bool = False  # passed the motion gate only as a periodic keep-alive sample
    full: np.ndarray | None = None  # uint8 [h, w, 3] RGB of the roi at source resolution (snapshots)
    regions: tuple[Region, ...] = ()  # crops classified beside the whole frame (regions enabled)
    box: Box | None = None  # set on the per-region view of a frame a region track judges
    scene: Scene | None = None  # that view's whole picture and its box (drawn on it for snapshots)


@dataclass(frozen=True, slots=True)
class Prediction:
    """The classifier's answer for one frame."""

    frame: Frame
    probs: np.ndarray  # float32 [num_classes] softmax probabilities
    region_probs: tuple[np.ndarray, ...] = ()  # one per frame.regions, in that order


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """Health of one stream, published on P/S/C/status when it changes."""

    stream_id: str
    state: StreamState
    error: str | None = None  # one line, credentials redacted
    fps: float = 0.0  # sampled frames per second, recent
    last_frame_at: float | None = None  # epoch seconds
    reconnects: int = 0
    dropped: int = 0
    frames_in: int = 0  # decoded frames
    frames_sampled: int = 0
    # Epoch seconds of the source's last sign of life (a decoded picture, a folder scan); health
    # only, not in the payload.
    alive_at: float | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "error": self.error,
            "fps": round(self.fps, 3),
            "last_frame_at": rfc3339(self.last_frame_at) if self.last_frame_at is not None else None,
            "reconnects": self.reconnects,
            "dropped": self.dropped,
            "frames_in": self.frames_in,
            "frames_sampled": self.frames_sampled,
        }


@dataclass(frozen=True, slots=True)
class SightingEvent:
    """One event of a sighting's life; to_payload() is its JSON (schemas/sighting.schema.json)."""

    id: str  # uuid4 string, stable for one sighting
    seq: int  # 0 for start, +1 per event of the same sighting
    event: EventKind
    station: str
    stream: str
    species: str
    score: float
    top: tuple[tuple[str, float], ...]
    started_at: float  # epoch seconds of the first supporting frame
    updated_at: float  # epoch seconds of the frame that caused this event
    ended_at: float | None  # epoch seconds of the last supporting frame (end events only)
    frames: int  # supporting frames so far
    model: str  # "<weights name>@<first 12 hex of sha256>"
    snapshot: str | None = None  # path relative to state_dir, or None
    media_start_s: float | None = None
    media_end_s: float | None = None
    prior: float = 1.0  # the species' occurrence weight at the station in the month it started (1 = no prior)
    first_at_station: bool = False  # the first sighting ever of this species at this station
    box: Box | None = None  # the region the best frame was judged on; None = the whole frame
    # Not part of the payload: the best frame so far (full-res roi if the source gave one).
    best_image: np.ndarray | None = field(default=None, compare=False, repr=False)
    # ... and, for a region, the whole picture its box lies on (the snapshot's `-scene` image).
    best_scene: Scene | None = field(default=None, compare=False, repr=False)

    def with_snapshot(self, path: str | None) -> SightingEvent:
        return dataclasses.replace(self, snapshot=path)

    def to_payload(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "id": self.id,
            "seq": self.seq,
            "event": self.event,
            "station": self.station,
            "stream": self.stream,
            "species": self.species,
            "score": round(float(self.score), 4),
            "top": [[name, round(float(p), 4)] for name, p in self.top],
            "started_at": rfc3339(self.started_at),
            "updated_at": rfc3339(self.updated_at),
            "ended_at": rfc3339(self.ended_at) if self.ended_at is not None else None,
            "frames": self.frames,
            "snapshot": self.snapshot,
            "model": self.model,
            "media_start_s": _round_opt(self.media_start_s),
            "media_end_s": _round_opt(self.media_end_s),
            "prior": round(float(self.prior), 4),
            "first_at_station": self.first_at_station,
            "box": None if self.box is None else [round(float(v), 4) for v in self.box],
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> SightingEvent:
        """The event of a payload as to_payload() wrote it (e.g. a line of sightings.jsonl).

        Raises KeyError, ValueError or TypeError for a payload that is not one; keys a damaged line
        may lack (top, frames, model, snapshot, media times) read as empty.
        """
        updated = _epoch(p["updated_at"])
        if updated is None:
            raise ValueError("no updated_at")
        return cls(
            id=str(p["id"]),
            seq=int(p["seq"]),
            event=p["event"],
            station=str(p["station"]),
            stream=str(p["stream"]),
            species=str(p["species"]),
            score=float(p["score"]),
            top=tuple((str(name), float(score)) for name, score in p.get("top") or ()),
            started_at=_epoch(p.get("started_at")) or updated,
            updated_at=updated,
            ended_at=_epoch(p.get("ended_at")),
            frames=int(p.get("frames") or 0),
            model=str(p.get("model") or ""),
            snapshot=p.get("snapshot"),
            media_start_s=p.get("media_start_s"),
            media_end_s=p.get("media_end_s"),
            prior=float(p.get("prior", 1.0)),
            first_at_station=bool(p.get("first_at_station", False)),
            box=_box(p.get("box")),
        )


def _box(value: Any) -> Box | None:
    """A payload's box (absent in events written before regions)."""
    if not isinstance(value, list) or len(value) != 4:
        return None
    x, y, w, h = (float(v) for v in value)
    return (x, y, w, h)


def _round_opt(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def rfc3339(epoch_s: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with milliseconds, e.g. 2026-05-01T06:12:03.250Z."""
    dt = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
