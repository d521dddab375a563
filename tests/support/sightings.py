"""Realistic SightingEvent / StreamStatus values for tests of anything downstream of the tracker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np

from birdstream.messages import SightingEvent, StreamStatus

MODEL = "vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-arabian-peninsula@561734d8271e"
T0 = 1_780_000_000.0  # 2026-05-28, a fixed epoch for reproducible dates


def make_event(
    *,
    sighting_id: str | None = None,
    seq: int = 0,
    event: str = "start",
    station: str = "garden",
    stream: str = "feeder",
    species: str = "Pycnonotus leucotis",
    score: float = 0.91,
    started_at: float = T0,
    image: np.ndarray | None = None,
) -> SightingEvent:
    top = ((species, score), ("Passer domesticus", round((1 - score) / 2, 4)))
    return SightingEvent(
        id=sighting_id or str(uuid.uuid4()),
        seq=seq,
        event=event,  # type: ignore[arg-type]
        station=station,
        stream=stream,
        species=species,
        score=score,
        top=top,
        started_at=started_at,
        updated_at=started_at + seq,
        ended_at=started_at + seq if event == "end" else None,
        frames=2 + seq,
        model=MODEL,
        best_image=image,
    )


def sighting(n_events: int, **kw: object) -> Iterator[SightingEvent]:
    """start, update..., end of one sighting (n_events >= 2), same id, seq 0..n-1."""
    sid = str(kw.pop("sighting_id", None) or uuid.uuid4())
    for seq in range(n_events):
        kind = "start" if seq == 0 else ("end" if seq == n_events - 1 else "update")
        yield make_event(sighting_id=sid, seq=seq, event=kind, **kw)  # type: ignore[arg-type]


def make_status(stream: str = "feeder", state: str = "running", **kw: object) -> StreamStatus:
    return StreamStatus(stream_id=stream, state=state, fps=2.0, last_frame_at=T0, **kw)  # type: ignore[arg-type]


def gradient_image(h: int = 48, w: int = 64, shift: int = 0) -> np.ndarray:
    """A uint8 RGB image whose content depends on ``shift`` (distinct images, distinct JPEGs)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 4 + shift) % 256, (y * 5) % 256, (x + y + shift * 7) % 256], axis=-1)
    return img.astype(np.uint8)
