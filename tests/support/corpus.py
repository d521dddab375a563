"""A corpus of broken and odd media, generated on the spot, each with what it holds.

Every item says whether it must be read (``must_read``), must be refused (``must_fail``) or may
do either, and which species a reader must find in it when it is read (``species``, None for no
bird). Everything is small (320x240, a few seconds) except the one huge still.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image

from tests.support.planted import PLANTED_COLOURS
from tests.support.video import Box, corrupt_copy, make_audio_only, make_video, truncate_copy, write_bytes

RED, BLUE, GREEN = (PLANTED_COLOURS["Scarlet Tanager"], PLANTED_COLOURS["Indian Roller"],
                    PLANTED_COLOURS["Green Bee-eater"])
SPECIES = {RED: "Scarlet Tanager", BLUE: "Indian Roller", GREEN: "Green Bee-eater"}
BIRD = (110, 70, 100, 90)


@dataclass(frozen=True)
class Item:
    name: str
    path: Path
    species: str | None  # what a reader must find when it reads the file
    expect: str  # "read" | "fail" | "either"
    still: bool = False  # one picture: a sighting only where stills are judged alone (classify)


def encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # noqa: BLE001 - PyAV raises different errors for unknown codecs
        return False


def _clip(path: Path, colour: tuple[int, int, int], **kw: object) -> Path:
    return make_video(path, duration_s=4, fps=10, objects=[Box(colour, BIRD, 0.8, 3.2)], **kw)  # type: ignore[arg-type]


def _huge_still(path: Path) -> Path:
    """8000x6000 grey with a red bird covering ~12%: 48 MP, under the 120 MP refusal limit."""
    image = Image.new("RGB", (8000, 6000), (110, 110, 110))
    image.paste(RED, (2750, 1750, 5250, 4000))
    image.save(path, quality=80)
    return path


def _still(path: Path, colour: tuple[int, int, int], fmt: str = "JPEG") -> Path:
    image = Image.new("RGB", (320, 240), (120, 120, 120))
    image.paste(colour, (110, 70, 210, 160))
    image.save(path, format=fmt, quality=90)
    return path


def make_corpus(folder: Path) -> list[Item]:
    """Write the corpus into ``folder`` (file names are unique, so a folder works as a card too)."""
    folder.mkdir(parents=True, exist_ok=True)
    work = folder.parent / f"{folder.name}-work"
    work.mkdir(exist_ok=True)
    items: list[Item] = []

    def add(name: str, make: Callable[[Path], Path], species: str | None, expect: str, still: bool = False) -> None:
        items.append(Item(name, make(folder / name), species, expect, still))

    add("reference.mp4", lambda p: _clip(p, RED), "Scarlet Tanager", "read")
    ts = _clip(work / "whole.ts", BLUE, gop=5)  # key frames often, so bytes follow time
    add("truncated.ts", lambda p: truncate_copy(ts, p, 0.8), "Indian Roller", "read")  # the bird is in the first 80%
    mp4 = _clip(work / "whole.mp4", RED)
    add("truncated.mp4", lambda p: truncate_copy(mp4, p, 0.6), "Scarlet Tanager", "either")  # index at the end: gone
    add("corrupted.mp4", lambda p: corrupt_copy(mp4, p, start=0.45, length=0.1), "Scarlet Tanager", "either")
    add("zero.mp4", lambda p: write_bytes(p, b""), None, "fail")
    add("random.mp4", lambda p: write_bytes(p, bytes(range(256)) * 64), None, "fail")
    add("video-named.jpg", lambda p: shutil.copyfile(mp4, p) and p, "Scarlet Tanager", "read")
    add("still-named.mp4", lambda p: _still(p, GREEN), "Green Bee-eater", "read", still=True)
    add("audio-only.m4a", lambda p: make_audio_only(p, 2.0), None, "fail")
    add("huge.jpg", _huge_still, "Scarlet Tanager", "read", still=True)
    add("mjpeg.avi", lambda p: _clip(p, GREEN, codec="mjpeg"), "Green Bee-eater", "read")
    add("h264-10bit.mkv", lambda p: _clip(p, RED, pix_fmt="yuv420p10le"), "Scarlet Tanager", "read")
    if encoder_available("libx265"):
        add("hevc.mp4", lambda p: _clip(p, BLUE, codec="hevc"), "Indian Roller", "read")
    if encoder_available("libvpx-vp9"):
        add("vp9.webm", lambda p: _clip(p, GREEN, codec="libvpx-vp9"), "Green Bee-eater", "read")
    if encoder_available("libsvtav1"):
        add("av1.mkv", lambda p: _clip(p, BLUE, codec="libsvtav1"), "Indian Roller", "either")
    shutil.rmtree(work, ignore_errors=True)
    return items
