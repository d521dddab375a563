"""The MegaDetector batch-output format (what Timelapse loads): images, detections, category maps.

Follows the format's published description (agentmorris/MegaDetector, megadetector-output-format.md,
format version 1.6). birdstream has no detector: each sighting is one detection of category
"animal" whose confidence is the sighting's score, whose box is the sighting's region (the whole
frame when it was judged on the whole frame) and whose classifications are its top classes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from birdstream.errors import ConfigError

FORMAT_VERSION = "1.6"
ANIMAL = "1"
WHOLE_FRAME = (0.0, 0.0, 1.0, 1.0)


class MegadetectorError(ConfigError):
    """The output file cannot be written."""


@dataclass(frozen=True)
class Detection:
    conf: float
    top: Sequence[tuple[str, float]]  # (class name, probability), best first
    box: Sequence[float] | None = None  # [x, y, w, h] fractions of the frame; None = the whole frame
    frame_number: int | None = None  # videos: the frame it was seen in


@dataclass
class MediaResult:
    file: str  # as it will appear in the JSON: relative to the folder classified, forward slashes
    frame_rate: float | None = None  # videos only
    frames_processed: list[int] = field(default_factory=list)  # videos only: the frame numbers classified
    detections: list[Detection] = field(default_factory=list)
    failure: str | None = None


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _detection(d: Detection, class_ids: dict[str, str]) -> dict[str, Any]:
    box = list(d.box) if d.box is not None and len(d.box) == 4 else list(WHOLE_FRAME)
    top = sorted(((class_ids[name], round(float(p), 4)) for name, p in d.top if name in class_ids),
                 key=lambda c: -c[1])
    out: dict[str, Any] = {"category": ANIMAL, "conf": round(float(d.conf), 4),
                           "bbox": [round(min(max(float(v), 0.0), 1.0), 4) for v in box],
                           "classifications": [list(c) for c in top]}
    if d.frame_number is not None:
        out["frame_number"] = int(d.frame_number)
    return out


def _image(m: MediaResult, class_ids: dict[str, str]) -> dict[str, Any]:
    if m.failure is not None:
        return {"file": m.file, "failure": m.failure, "detections": None}
    out: dict[str, Any] = {"file": m.file}
    if m.frame_rate is not None:
        out["frame_rate"] = round(float(m.frame_rate), 4)
        out["frames_processed"] = sorted(set(m.frames_processed))
    out["detections"] = [_detection(d, class_ids) for d in m.detections]
    return out


def document(media: Sequence[MediaResult], *, class_names: Sequence[str], model: str, started: float,
             finished: float, threshold: float) -> dict[str, Any]:
    """The whole batch-output document; ``class_names`` in the model's index order."""
    class_ids = {name: str(i) for i, name in enumerate(class_names)}
    return {
        "info": {
            "format_version": FORMAT_VERSION,
            "detector": "birdstream (sightings; no detector model)",
            "detection_completion_time": _when(finished),
            "classifier": model,
            "classification_completion_time": _when(finished),
            "detector_metadata": {"typical_detection_threshold": threshold,
                                  "conservative_detection_threshold": threshold},
            "classifier_metadata": {"started": _when(started)},
        },
        "detection_categories": {ANIMAL: "animal"},
        "classification_categories": {i: name for name, i in class_ids.items()},
        "images": [_image(m, class_ids) for m in sorted(media, key=lambda m: m.file)],
    }


def write(path: Path, doc: dict[str, Any]) -> None:
    """Atomically: a Timelapse user never loads half a file."""
    folder = path.absolute().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise MegadetectorError(f"{path}: cannot write the MegaDetector JSON ({exc.strerror or exc})") from None
