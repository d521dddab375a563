"""Region proposals and crops: what moves is proposed, noise and global changes are not, crops are capped."""

from __future__ import annotations

import numpy as np

from birdstream.ingest.regions import RegionOptions, RegionProposer, square

HD = (1080, 1920)  # h, w


def scene(seed: int = 0) -> np.ndarray:
    """A 1080p picture with structure (large soft blobs) and per-pixel noise, like a garden."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 200, size=(27, 48, 3)).astype(np.uint8)
    big = np.repeat(np.repeat(coarse, 40, axis=0), 40, axis=1)
    return np.clip(big.astype(np.int16) + rng.integers(-12, 12, size=big.shape), 0, 255).astype(np.uint8)


def with_bird(bg: np.ndarray, x: int, y: int, size: int = 50, rgb=(255, 0, 0)) -> np.ndarray:
    out = bg.copy()
    out[y : y + size, x : x + size] = rgb
    return out


def proposer(**kw) -> RegionProposer:
    return RegionProposer(RegionOptions(**kw), (96, 96))


def test_a_moving_bird_is_proposed_after_two_samples_and_cut_at_source_resolution() -> None:
    bg = scene()
    p = proposer()
    assert p.propose(bg, 0.0) == []  # the first picture is the background
    assert p.propose(with_bird(bg, 600, 400), 0.5) == []  # once is not enough: noise, a leaf
    boxes = p.propose(with_bird(bg, 620, 400), 1.0)
    assert len(boxes) == 1
    (x, y, w, h), motion = boxes[0]
    slack = 1920 // 320  # one pixel of the analysis picture
    assert abs(x - 620) <= slack and abs(x + w - 670) <= slack and abs(y - 400) <= slack and abs(y + h - 450) <= slack
    assert motion > 0.2
    picture = with_bird(bg, 620, 400)
    (region,) = p.crops(picture, boxes)
    assert region.image.shape == (96, 96, 3)
    side = region.crop.shape[0]
    assert region.crop.shape == (side, side, 3) and 128 <= side <= 3 * max(w, h) + 1  # source pixels
    # The bird fills a useful part of what the model sees, not 0.1 % of it.
    red = (region.image[..., 0] > 200) & (region.image[..., 1] < 60)
    assert red.mean() > 0.05
    bx, by, bw, bh = region.box
    assert abs(bx - x / 1920) < 1e-6 and abs(bw - w / 1920) < 1e-6 and abs(by - y / 1080) < 1e-6


def test_a_roi_offsets_the_box_into_the_full_source_frame() -> None:
    bg = scene()[200:800, 400:1400]  # the roi [400, 200, 1000, 600] at source resolution
    p = proposer()
    for i, t in enumerate((0.0, 0.5, 1.0)):
        boxes = p.propose(with_bird(bg, 300 + 20 * i, 300) if i else bg, t)
    (region,) = p.crops(with_bird(bg, 340, 300), boxes, origin=(400, 200), source=(1920, 1080))
    x, y, _, _ = region.box
    assert abs(x * 1920 - (400 + region.pixels[0])) < 1 and abs(y * 1080 - (200 + region.pixels[1])) < 1


def test_lights_on_recalibrates_instead_of_proposing() -> None:
    bg = scene()
    p = proposer()
    p.propose(bg, 0.0)
    bright = np.clip(bg.astype(np.int16) + 70, 0, 255).astype(np.uint8)
    assert p.propose(bright, 0.5) == []
    assert p.propose(bright, 1.0) == []
    assert p.recalibrations == 1
    # The new light is the background now: a bird after it is found as before.
    p.propose(with_bird(bright, 900, 500), 1.5)
    assert len(p.propose(with_bird(bright, 920, 500), 2.0)) == 1


def test_camera_shake_and_swarms_never_flood_the_engine() -> None:
    bg = scene()
    p = proposer(max_regions=3)
    p.propose(bg, 0.0)
    for i in range(1, 8):  # the camera shakes a few pixels each sample
        shaken = np.roll(bg, (4 * (-1) ** i, 6 * (-1) ** i), axis=(0, 1))
        assert len(p.propose(shaken, 0.5 * i)) <= 3
    q = proposer(max_regions=4)
    q.propose(bg, 0.0)
    for i in range(1, 5):  # twenty small things moving at once
        picture = bg
        for k in range(20):
            picture = with_bird(picture, 60 + 90 * k, 100 + 40 * (k % 5) + 10 * i, size=30 + k)
        boxes = q.propose(picture, 0.5 * i)
        assert len(boxes) <= 4
    sizes = [w * h for (_, _, w, h), _ in boxes]
    assert len(boxes) == 4 and sizes == sorted(sizes, reverse=True)  # largest first


def test_a_bird_that_stops_is_held_then_let_go() -> None:
    bg = scene()
    p = proposer(hold_s=5.0)
    p.propose(bg, 0.0)
    p.propose(with_bird(bg, 600, 400), 0.5)
    p.propose(with_bird(bg, 620, 400), 1.0)
    still = with_bird(bg, 620, 400)
    t = 1.0
    while True:  # the background slowly takes the perched bird in
        t += 0.5
        held = p.propose(still, t)
        assert len(held) == 1, t  # meanwhile it is still classified
        if held[0][1] == 0.0:
            break
        assert t < 60
    last_motion = t - 0.5
    assert p.propose(still, t + 0.5) == []  # still: classified every still_every_s, not every sample
    assert len(p.propose(still, t + 2.0)) == 1
    assert len(p.propose(still, last_motion + 4.9)) == 1
    assert p.propose(still, last_motion + 5.1) == []  # held for hold_s only


def test_the_square_crop_stays_inside_the_picture() -> None:
    assert square((0, 0, 50, 50), (1920, 1080), 3.0, 128) == (0, 0, 150)
    assert square((1900, 1060, 20, 20), (1920, 1080), 3.0, 128) == (1792, 952, 128)
    assert square((0, 0, 2000, 2000), (1920, 1080), 3.0, 128) == (460, 0, 1080)
