"""Sampled picture -> model input: rotate, crop the roi, squash-resize like PIL's BICUBIC.

Only sampled frames come here. The path is: swscale YUV -> RGB at source resolution (exact
conversion), display rotation, roi crop (a view), then swscale bicubic resize of the RGB crop.
swscale's bicubic widens its kernel when shrinking (antialias), like PIL. Measured against PIL's
BICUBIC resize of the same RGB (tests/ingest/test_convert.py): mean absolute difference about 0.2
grey levels of 255, 99th percentile 1, for 1280x720 -> 384x384, a small roi enlarged to 384x384,
and an odd 641x361 -> 160x224 (asserted: mean < 0.5, p99 <= 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
from PIL import Image, ImageOps

from birdstream.ingest.errors import StreamError

Size = tuple[int, int]  # (h, w)


@dataclass(frozen=True, slots=True)
class Converted:
    image: np.ndarray  # uint8 [H, W, 3] at the model input size
    full: np.ndarray | None  # uint8 [h, w, 3] roi at source resolution (when asked)


def resize_rgb(rgb: np.ndarray, size: Size) -> np.ndarray:
    """Squash an RGB array to (h, w) with antialiased bicubic (close to PIL's BICUBIC)."""
    h, w = size
    if rgb.shape[0] == h and rgb.shape[1] == w:
        return np.array(rgb, copy=True)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(w, h, interpolation="BICUBIC").to_ndarray()


def crop_roi(rgb: np.ndarray, roi: tuple[int, int, int, int] | None, label: str) -> np.ndarray:
    """The roi [x, y, w, h] clipped to the picture, as a view; the whole picture when roi is None."""
    if roi is None:
        return rgb
    x, y, w, h = roi
    H, W = rgb.shape[:2]
    x0, y0 = max(0, min(x, W)), max(0, min(y, H))
    x1, y1 = max(x0, min(x + w, W)), max(y0, min(y + h, H))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise StreamError(label, "io", f"roi {list(roi)} lies outside the {W}x{H} picture")
    return rgb[y0:y1, x0:x1]


def rotation_of(frame: av.VideoFrame) -> int:
    """Counter-clockwise display rotation in quarter turns (0..3) from the frame's display matrix."""
    try:
        deg = int(round(float(frame.rotation or 0)))
    except (AttributeError, TypeError, ValueError):
        return 0
    return (deg // 90) % 4 if deg % 90 == 0 else 0


class Converter:
    """Converts sampled frames/stills of one stream to model-size RGB (+ the full-res roi)."""

    def __init__(self, input_size: Size, roi: tuple[int, int, int, int] | None, label: str,
                 want_full: bool = False) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.roi = roi
        self.label = label
        self.want_full = want_full

    def video(self, frame: av.VideoFrame) -> Converted:
        rgb = frame.to_ndarray(format="rgb24")
        quarter = rotation_of(frame)
        if quarter:
            rgb = np.rot90(rgb, k=quarter)
        return self._finish(rgb)

    def still(self, image: Image.Image) -> Converted:
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
        return self._finish(np.asarray(image))

    def _finish(self, rgb: np.ndarray) -> Converted:
        crop = crop_roi(rgb, self.roi, self.label)
        full = np.ascontiguousarray(crop) if self.want_full else None
        return Converted(resize_rgb(crop, self.input_size), full)
