"""A camera-trap upload folder as a daemon stream: stills become sightings as in `birdstream classify`."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from birdstream.config import config_from_dict
from birdstream.engine.classifier import Classifier
from birdstream.station.live import LivePipeline
from tests.e2e.conftest import BLUE, Collect
from tests.support.daemon import wait_until


def test_a_still_dropped_into_a_watched_folder_is_one_sighting_of_that_stream(tmp_path: Path, planted: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    Image.new("RGB", (320, 240), (120, 120, 120)).save(uploads / "IMG_0001.JPG")  # an empty scene first
    config = config_from_dict({
        "station": "trap", "state_dir": str(tmp_path / "state"),
        "model": {"weights": str(planted)},
        "streams": [{"id": "trap1", "url": str(uploads), "watch": True}],
        "sightings": {"end_after_s": 1},
        "mqtt": {"enabled": False},
    }, base_dir=tmp_path)
    sink = Collect()
    pipeline = LivePipeline(config, Classifier.load(str(planted), "cpu", "fp32"), sink)
    pipeline.start()
    try:
        wait_until(lambda: pipeline.engine.mailbox("trap1").classified >= 1, 60, "the first still classified")
        bird = Image.new("RGB", (320, 240), (128, 128, 128))
        bird.paste(BLUE, (110, 70, 210, 160))
        part = uploads / ".IMG_0002.JPG.part"
        bird.save(part, format="JPEG")
        os.utime(part, (1_700_000_000, 1_700_000_000))
        part.rename(uploads / "IMG_0002.JPG")  # as an uploader finishes a file

        def ended() -> list:
            with sink.lock:
                return [e for e in sink.events if e.event == "end"]

        wait_until(lambda: ended(), 60, "the lone still's sighting ended")
    finally:
        pipeline.stop()
    with sink.lock:
        events = list(sink.events)
    assert [(e.event, e.stream, e.species, e.frames) for e in events] == [
        ("start", "trap1", "Indian Roller", 1), ("end", "trap1", "Indian Roller", 1)]
