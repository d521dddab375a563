"""Regenerate the README's picture of the page: ``python3 -m tests.web.screenshot docs/page.png``.

A store filled with a day of made-up sightings of the planted species, served by the real server,
photographed by headless Chromium, saved as a small palette PNG.
"""

from __future__ import annotations

import io
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from PIL import Image

from birdstream.messages import StreamStatus
from birdstream.web import ReviewPolicy
from tests.support.browser import chromium
from tests.web.conftest import Served, sighting_events

COLOURS = {"Scarlet Tanager": (200, 40, 40), "Indian Roller": (40, 90, 200), "House Sparrow": (140, 110, 80)}


def bird(state_dir: Path, rel: str, colour: tuple[int, int, int], rng: random.Random) -> str:
    """A coloured bird-ish shape on a leafy background, like the planted model's test videos."""
    from PIL import ImageDraw

    image = Image.new("RGB", (320, 240), (96, 128, 84))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(320), rng.randrange(240)
        draw.ellipse((x, y, x + 30, y + 14), fill=(70 + rng.randrange(40), 110 + rng.randrange(40), 60))
    x, y = rng.randrange(60, 200), rng.randrange(40, 120)
    draw.ellipse((x, y, x + 90, y + 60), fill=colour)
    draw.ellipse((x + 70, y - 20, x + 110, y + 20), fill=colour)
    draw.polygon([(x + 108, y), (x + 124, y + 4), (x + 108, y + 8)], fill=(230, 180, 40))
    (state_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    image.save(state_dir / rel, "JPEG", quality=80)
    return rel


def main(out: Path) -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        served = Served(Path(folder) / "state", ReviewPolicy(loopback=True))
        try:
            midnight = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
            now = time.time()
            served.site.streams = lambda: [StreamStatus("feeder", "running", fps=2.0, last_frame_at=now),
                                           StreamStatus("pond", "reconnecting", error="rtsp://pond: timed out",
                                                        reconnects=3)]
            for i in range(18):
                species = rng.choice(list(COLOURS))
                snap = bird(served.state_dir, f"snapshots/s{i}.jpg", COLOURS[species], rng)
                started = midnight + rng.uniform(min(5 * 3600, now - midnight - 120), now - midnight - 60)
                served.add(sighting_events(started, species=species, snapshot=snap,
                                           stream=rng.choice(["feeder", "pond"])))
            with chromium(1000, 1150) as driver:
                driver.get(served.base + "/")
                time.sleep(1.0)  # images settle; a picture, not a test
                png = driver.get_screenshot_as_png()
        finally:
            served.close()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(64)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/page.png"))
