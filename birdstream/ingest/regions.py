"""Region proposals from motion, and square crops cut at source resolution for the classifier.

Per stream, per sampled frame: a grey picture at a small analysis width is compared with a slowly
adapting background (``accumulateWeighted``); changed pixels are thresholded, closed and dilated so
the parts of one bird join, and the connected components become boxes. A box qualifies when it is
within the size and aspect limits and something moved there in the previous sample as well (a
single-sample speck of noise or a leaf flicker does not). Qualified boxes become held regions: a
bird that stops moving keeps its region, at its last box, for ``hold_s`` (it is still classified,
so its sighting goes on). When most of the picture changes at once (lights on, an IR switch,
camera shake) the background is recalibrated instead: that sample proposes nothing new.

A crop is a square around the box, ``context`` times its longer side (at least ``min_crop_px``),
cut from the full-resolution picture and resized to the model input in one step, so a 50-pixel
bird in a 1080p frame reaches the classifier at a useful size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from birdstream.messages import Region

# cv2 is imported where it is used: importing ingest (check-config, health) stays instant.

log = logging.getLogger(__name__)

Size = tuple[int, int]  # (h, w)
PixelBox = tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True)
class RegionOptions:
    """The `regions:` config of one stream (see config.yaml for what each means)."""

    enabled: bool = True
    max_regions: int = 4
    analysis_width: int = 320
    pixel_delta: int = 20
    min_box_px: int = 12
    max_box_fraction: float = 0.25
    max_aspect: float = 5.0
    everywhere: float = 0.4
    context: float = 3.0
    min_crop_px: int = 128
    hold_s: float = 300.0
    still_every_s: float = 2.0  # a held region that does not move is classified this often, not every sample
    adapt: float = 0.05


@dataclass
class _Held:
    box: PixelBox  # source pixels of the analysed picture (the roi when there is one)
    last_motion: float
    motion: float = 0.0  # changed fraction of the box in the latest sample
    last_sent: float | None = None  # when it was last proposed while still
    seen: int = field(default=1)


def iou(a: PixelBox, b: PixelBox) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def near(a: PixelBox, b: PixelBox) -> bool:
    """The same thing one sample later: overlapping, or centres within about one box size."""
    if iou(a, b) > 0:
        return True
    dx = (a[0] + a[2] / 2) - (b[0] + b[2] / 2)
    dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    reach = max(a[2], a[3], b[2], b[3])
    return dx * dx + dy * dy <= reach * reach


class RegionProposer:
    """Motion regions of one stream's pictures; no threads, time comes from the caller."""

    def __init__(self, options: RegionOptions, input_size: Size) -> None:
        import cv2
        self.options = options
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self._bg: np.ndarray | None = None
        self._prev: list[PixelBox] = []  # candidate boxes of the previous sample
        self._held: list[_Held] = []
        self.recalibrations = 0
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def reset(self) -> None:
        self._bg = None
        self._prev = []
        self._held = []

    def propose(self, picture: np.ndarray, now: float, *, still: bool = False) -> list[tuple[PixelBox, float]]:
        """(box in picture pixels, changed fraction of the box) of the regions to classify, best first.

        `still`: a photo of a burst (camera trap): what differs from the previous photo, with no
        persistence or holding (each photo is judged once); the previous photo is the background.
        """
        import cv2
        h, w = picture.shape[:2]
        small, scale = self._analysis(picture)
        if self._bg is None or self._bg.shape != small.shape:
            self._bg = small.astype(np.float32)
            self._prev = []
            return [] if still else self._current(now)
        if still:
            return self._differences(small, scale, (w, h))
        diff = cv2.absdiff(small, cv2.convertScaleAbs(self._bg))
        _, mask = cv2.threshold(diff, self.options.pixel_delta, 255, cv2.THRESH_BINARY)
        if cv2.countNonZero(mask) > self.options.everywhere * mask.size:
            # Lights on, an IR switch or a shaken camera: not a bird everywhere. Start the
            # background again from this picture; held regions stay, nothing new is proposed.
            self._bg = small.astype(np.float32)
            self._prev = []
            for held in self._held:
                held.motion = 0.0  # nothing is known to move in this picture
            self.recalibrations += 1
            log.debug("regions: motion over most of the picture; background recalibrated")
            return self._current(now)
        cv2.accumulateWeighted(small, self._bg, self.options.adapt)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel)
        joined = cv2.dilate(mask, self._kernel, iterations=2)  # the parts of one bird become one
        candidates = self._components(joined, mask, scale, (w, h))
        qualified = [c for c in candidates if any(near(c[0], p) for p in self._prev)]
        self._prev = [box for box, _ in candidates]
        self._hold(qualified, now)
        return self._current(now)

    def _differences(self, small: np.ndarray, scale: float, size: tuple[int, int]) -> list[tuple[PixelBox, float]]:
        import cv2
        diff = cv2.absdiff(small, cv2.convertScaleAbs(self._bg))
        self._bg = small.astype(np.float32)
        _, mask = cv2.threshold(diff, self.options.pixel_delta, 255, cv2.THRESH_BINARY)
        if cv2.countNonZero(mask) > self.options.everywhere * mask.size:
            return []  # another scene, or the light changed: judged on the whole photo
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel)
        found = self._components(cv2.dilate(mask, self._kernel, iterations=2), mask, scale, size)
        return found[: self.options.max_regions]  # largest first

    def _analysis(self, picture: np.ndarray) -> tuple[np.ndarray, float]:
        import cv2
        h, w = picture.shape[:2]
        aw = min(w, self.options.analysis_width)
        ah = max(1, round(h * aw / w))
        # Bilinear shrink first, grey after: ~10x cheaper than an area average of the full picture;
        # the blur then evens out what sampling left (motion needs no finer detail than that).
        small = cv2.resize(picture, (aw, ah), interpolation=cv2.INTER_LINEAR)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        return cv2.GaussianBlur(small, (3, 3), 0), w / aw

    def _components(self, joined: np.ndarray, mask: np.ndarray, scale: float,
                    size: tuple[int, int]) -> list[tuple[PixelBox, float]]:
        import cv2
        w, h = size
        o = self.options
        n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        out: list[tuple[PixelBox, float]] = []
        for i in range(1, n):
            x, y, bw, bh, _ = (int(v) for v in stats[i])
            # The box of what changed inside the joined area, not of the dilation around it.
            part = (labels[y : y + bh, x : x + bw] == i) & (mask[y : y + bh, x : x + bw] > 0)
            dx, dy, bw, bh = cv2.boundingRect(part.astype(np.uint8))
            x, y, area = x + dx, y + dy, int(part.sum())
            if area == 0:
                continue
            box = (int(x * scale), int(y * scale), max(1, round(bw * scale)), max(1, round(bh * scale)))
            if min(box[2], box[3]) < o.min_box_px:
                continue
            if box[2] * box[3] > o.max_box_fraction * w * h:
                continue  # a whole-picture change is judged on the whole frame
            if max(box[2], box[3]) > o.max_aspect * min(box[2], box[3]):
                continue  # a wire swinging, a shadow edge
            out.append((box, area / float(bw * bh)))
        # A busy picture (a hedge in wind) has many small changes: only the largest few can become
        # regions anyway, and matching them with the previous sample's costs per pair.
        out.sort(key=lambda c: c[0][2] * c[0][3], reverse=True)
        return out[: 4 * o.max_regions]

    def _hold(self, qualified: list[tuple[PixelBox, float]], now: float) -> None:
        for held in self._held:
            held.motion = 0.0
        for box, motion in qualified:
            match = next((h for h in self._held if near(box, h.box)), None)
            if match is None:
                self._held.append(_Held(box, now, motion))
            else:
                match.box, match.last_motion, match.motion = box, now, max(match.motion, motion)
                match.seen += 1
        # Overlapping held regions (a bird that walked into another's place) become one.
        merged: list[_Held] = []
        for held in sorted(self._held, key=lambda r: -r.last_motion):
            if not any(iou(held.box, m.box) > 0.3 for m in merged):
                merged.append(held)
        # A busy scene (a swaying hedge) must not grow the list without bound: the most recent win.
        self._held = merged[: 4 * self.options.max_regions]

    def _current(self, now: float) -> list[tuple[PixelBox, float]]:
        hold = self.options.hold_s
        self._held = [h for h in self._held if now - h.last_motion <= hold and now >= h.last_motion - hold]
        ranked = sorted(self._held, key=lambda r: (r.motion > 0, r.box[2] * r.box[3]), reverse=True)
        out = []
        for r in ranked:
            if len(out) >= self.options.max_regions:
                break
            if r.motion == 0:
                # A perched bird keeps its sighting with a crop now and then (well within
                # end_after_s); a spot a bird has left costs little until it is let go.
                if r.last_sent is not None and 0 <= now - r.last_sent < self.options.still_every_s:
                    continue
                r.last_sent = now
            out.append((r.box, r.motion))
        return out

    def crops(self, picture: np.ndarray, boxes: list[tuple[PixelBox, float]], *,
              origin: tuple[int, int] = (0, 0), source: tuple[int, int] | None = None) -> tuple[Region, ...]:
        """Regions of `picture` (the roi at source resolution); boxes as fractions of `source` (w, h)."""
        import cv2
        h, w = picture.shape[:2]
        sw, sh = source if source is not None else (w, h)
        ox, oy = origin
        out = []
        for box, motion in boxes:
            x0, y0, side = square(box, (w, h), self.options.context, self.options.min_crop_px)
            crop = picture[y0 : y0 + side, x0 : x0 + side]
            image = fit(crop, self.input_size)
            bx, by, bw, bh = box
            frac = (_unit((bx + ox) / sw), _unit((by + oy) / sh), _unit(bw / sw), _unit(bh / sh))
            out.append(Region(box=frac, pixels=box, image=image, crop=crop, motion=motion))
        return tuple(out)


def fit(crop: np.ndarray, size: Size) -> np.ndarray:
    """The crop at the model input size, straight from source pixels.

    Shrinking: bilinear to twice the size, then a 2:1 area average (OpenCV's fast path): about as
    smooth as an area average all the way, at a fraction of its cost on a large crop. Growing
    (a crop smaller than the input): bicubic.
    """
    import cv2

    h, w = size
    if crop.shape[0] <= h and crop.shape[1] <= w:
        return cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC)
    twice = cv2.resize(crop, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(twice, (w, h), interpolation=cv2.INTER_AREA)


def square(box: PixelBox, size: tuple[int, int], context: float, min_side: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the square crop around `box`, inside a picture of `size` (w, h)."""
    w, h = size
    bx, by, bw, bh = box
    side = int(min(max(context * max(bw, bh), min_side), w, h))
    cx, cy = bx + bw / 2, by + bh / 2
    x0 = int(min(max(0, round(cx - side / 2)), w - side))
    y0 = int(min(max(0, round(cy - side / 2)), h - side))
    return x0, y0, side


def _unit(v: float) -> float:
    return min(1.0, max(0.0, float(v)))
