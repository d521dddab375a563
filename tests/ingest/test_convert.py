"""The resize follows the model's preprocessing (squash, PIL BICUBIC with antialias), measured."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image, ImageFilter

from birdstream.ingest.convert import Converter


def test_image(w: int, h: int) -> np.ndarray:
    """Structured detail (a fractal) plus smooth colour blobs: a fair stand-in for a photo."""
    fractal = np.asarray(Image.effect_mandelbrot((w, h), (-2.0, -1.2, 1.0, 1.2), 100).convert("RGB"))
    blobs = np.random.default_rng(0).integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    blobs = np.asarray(Image.fromarray(blobs).resize((w, h), Image.BICUBIC))
    img = Image.fromarray((fractal * 0.6 + blobs * 0.4).astype(np.uint8))
    return np.asarray(img.filter(ImageFilter.GaussianBlur(0.7)))


test_image.__test__ = False  # a helper, not a test


def pil_reference(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.BICUBIC))


@pytest.mark.parametrize("src, roi, size", [
    ((1280, 720), None, (384, 384)),  # shrink + squash
    ((640, 480), (200, 150, 120, 90), (384, 384)),  # small roi: enlarge
    ((642, 362), None, (224, 160)),  # non-square model input
])
def test_resize_is_close_to_pil_bicubic(src, roi, size) -> None:
    rgb = test_image(*src)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    converter = Converter(size, roi, "test", want_full=True)
    out = converter.video(frame)
    decoded = frame.to_ndarray(format="rgb24")
    if roi:
        x, y, w, h = roi
        decoded = decoded[y : y + h, x : x + w]
    ref = pil_reference(decoded, size)
    diff = np.abs(out.image.astype(np.int16) - ref)
    assert out.image.shape == (*size, 3)
    assert np.array_equal(out.full, decoded)
    print(f"{src}->{size} roi={roi}: mean abs diff to PIL {diff.mean():.3f}, p99 {np.percentile(diff, 99)}")
    if roi is None:  # one-pass fast path; measured about 1.1 grey levels of 255
        assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 3
    else:  # crop path; measured about 0.2
        assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 2


def test_still_orientation_and_roi() -> None:
    rgb = np.zeros((60, 80, 3), dtype=np.uint8)
    rgb[:20, :10] = (255, 0, 0)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    img.info["exif"] = exif.tobytes()
    out = Converter((8, 8), None, "t", want_full=True).still(Image.open(_save(img, exif)))
    assert out.full.shape == (80, 60, 3)
    assert tuple(out.full[2, -3]) == (255, 0, 0)  # top-left corner went to the top-right


def _save(img: Image.Image, exif: Image.Exif):
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG", exif=exif.tobytes())
    buf.seek(0)
    return buf
