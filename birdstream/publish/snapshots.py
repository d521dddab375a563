"""Snapshots: the best frame of each sighting as a JPEG at a stable path, with retention."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from birdstream.errors import PublishError
from birdstream.messages import SightingEvent
from birdstream.publish import metrics
from birdstream.publish.options import SnapshotOptions

log = logging.getLogger(__name__)

FOLDER = "snapshots"
_PRUNE_EVERY_S = 3600.0  # also prune hourly, so age limits hold at a quiet station


SCENE_SUFFIX = "-scene"  # <id>-scene.jpg: the whole picture with the region's box drawn on it


def scene_path(rel: str) -> str:
    """The scene image kept beside a region's snapshot (``<id>.jpg`` -> ``<id>-scene.jpg``)."""
    return rel[: -len(".jpg")] + SCENE_SUFFIX + ".jpg"


def relative_path(event: SightingEvent) -> str:
    """``snapshots/<stream>/<YYYY-MM-DD of started_at, UTC>/<id>.jpg``: stable for one sighting."""
    day = datetime.fromtimestamp(event.started_at, tz=timezone.utc).strftime("%Y-%m-%d")
    stream = event.stream.replace("/", "_").replace("\\", "_").lstrip(".") or "_"
    name = event.id.replace("/", "_").replace("\\", "_").lstrip(".") or "_"
    return f"{FOLDER}/{stream}/{day}/{name}.jpg"


class SnapshotStore:
    """Writes JPEGs atomically (tmp + rename), rewritten only when an event brings a new best image."""

    def __init__(self, state_dir: Path, options: SnapshotOptions, *, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / FOLDER
        self.options = options
        self._clock = clock
        self._written: dict[str, tuple[str, bytes]] = {}  # sighting id -> (relative path, image digest)
        self._since_prune = 0
        self._last_prune = clock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise PublishError(f"snapshots folder {self.root}: cannot create ({err.strerror or err})") from None

    def save(self, event: SightingEvent) -> tuple[SightingEvent, bytes | None]:
        """Write the event's best image if new; return the event with ``snapshot`` set and the new JPEG."""
        known = self._written.get(event.id)
        jpeg: bytes | None = None
        image = event.best_image
        if image is not None:
            digest = _digest(image)
            if known is None or known[1] != digest:
                rel = relative_path(event)
                jpeg = encode_jpeg(image, self.options.quality)
                self._write_atomic(self.state_dir / rel, jpeg)
                if event.best_scene is not None:
                    scene = boxed(event.best_scene.picture, event.best_scene.box)
                    self._write_atomic(self.state_dir / scene_path(rel), encode_jpeg(scene, self.options.quality))
                known = (rel, digest)
                self._written[event.id] = known
                metrics.SNAPSHOTS_WRITTEN.labels(stream=event.stream).inc()
                self._since_prune += 1
        if event.event == "end":
            self._written.pop(event.id, None)
        if self._since_prune >= self.options.prune_every or self._clock() - self._last_prune > _PRUNE_EVERY_S:
            self.prune()
        if known is not None and event.snapshot != known[0]:
            event = event.with_snapshot(known[0])
        return event, jpeg

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def prune(self) -> int:
        """Remove snapshots older than max_age_days, then the oldest until under max_total_mb."""
        self._since_prune = 0
        now = self._last_prune = self._clock()
        cutoff = now - self.options.max_age_days * 86400.0
        files: list[tuple[float, int, Path]] = []
        removed = 0
        for path in self.root.rglob("*.jpg"):
            try:
                st = path.stat()
            except OSError:
                continue
            if st.st_mtime < cutoff:
                removed += _unlink(path, "age")
            else:
                files.append((st.st_mtime, st.st_size, path))
        budget = int(self.options.max_total_mb * 1024 * 1024)
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= budget:
                break
            removed += _unlink(path, "size")
            total -= size
        for folder in sorted((p for p in self.root.rglob("*") if p.is_dir()), reverse=True):
            try:
                folder.rmdir()  # only empty day/stream folders go
            except OSError:
                pass
        if removed:
            log.info("snapshot retention removed %d file(s) from %s", removed, self.root)
        return removed


def _unlink(path: Path, reason: str) -> int:
    try:
        path.unlink()
    except OSError:
        return 0
    metrics.SNAPSHOTS_PRUNED.labels(reason=reason).inc()
    return 1


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest() + repr(image.shape).encode()


def boxed(picture: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A copy of the picture with the box outlined (a yellow frame a few pixels thick, by size)."""
    out = np.array(picture, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    t = max(2, min(h, w) // 270)
    x, y, bw, bh = box
    x0, y0 = max(0, x - t), max(0, y - t)
    x1, y1 = min(w, x + bw + t), min(h, y + bh + t)
    colour = (255, 220, 0)
    out[y0 : y0 + t, x0:x1] = colour
    out[max(y0, y1 - t) : y1, x0:x1] = colour
    out[y0:y1, x0 : x0 + t] = colour
    out[y0:y1, max(x0, x1 - t) : x1] = colour
    return out


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """uint8 RGB [H, W, 3] -> JPEG bytes."""
    arr = np.ascontiguousarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"snapshot image must be uint8 [H, W, 3], got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
