"""Offline reading (`birdstream classify`): every sampled frame, no drops, no pacing, no reconnect."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import ContextManager

from birdstream.ingest.convert import Size
from birdstream.ingest.errors import StreamError
from birdstream.ingest.frames import FrameMaker
from birdstream.ingest.hwaccel import HwDecodeFailed, HwDecoder
from birdstream.ingest.hwaccel import for_spec as hw_for_spec
from birdstream.ingest.interrupt import interruptible
from birdstream.ingest.media import is_still, list_media, open_video
from birdstream.ingest.spec import SourceSpec, is_live, local_path
from birdstream.messages import Frame

log = logging.getLogger(__name__)


def iter_frames(
    spec: SourceSpec,
    input_size: Size,
    want_full: bool = False,
    *,
    on_error: Callable[[StreamError], None] | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Frame]:
    """Sampled frames of a file, a still, or a folder (stills by EXIF time, then clips by name).

    Raises StreamError (a SourceError) for an unreadable input. For a folder, an unreadable file
    goes to `on_error` and reading continues; without `on_error` it raises. The motion gate is off
    unless the spec turns it on, but `Frame.motion` is always set. `stop` ends the iteration early.
    """
    stop = stop or threading.Event()
    kind = spec.kind
    maker = FrameMaker(spec, input_size, want_full=want_full, gate=bool(spec.motion_gate))
    hw = hw_for_spec(spec)
    if kind == "folder":
        paths = list_media(local_path(spec.url), on_error)
        if not paths:
            log.warning("%s: no video or image files in this folder (nothing classified)", local_path(spec.url))
        for path in paths:
            if stop.is_set():
                return
            maker.new_file()
            try:
                yield from _one(maker, spec, path, stop, hw)
            except StreamError as err:
                if on_error is None:
                    raise
                on_error(err)
        return
    path = local_path(spec.url) if kind == "file" else None
    yield from _one(maker, spec, path, stop, hw)


def _is_image_container(container) -> bool:
    """FFmpeg reads a lone picture as a one-frame video (image2, jpeg_pipe, png_pipe, ...)."""
    name = container.format.name or ""
    return name == "image2" or name.endswith("_pipe")


def _one(maker: FrameMaker, spec: SourceSpec, path: Path | None, stop: threading.Event,
         hw: HwDecoder | None) -> Iterator[Frame]:
    yield from read_media(maker, spec, path, stop, hw, guard=lambda: interruptible(stop))


def read_media(maker: FrameMaker, spec: SourceSpec, path: Path | None, stop: threading.Event,
               hw: HwDecoder | None = None, *,
               guard: Callable[[], ContextManager[object]] = nullcontext) -> Iterator[Frame]:
    """The frames of one file (or of the spec's source when path is None), judged by what it holds.

    A picture gives one still frame, a clip its sampled frames, whatever the file is named.
    `guard()` wraps each blocking FFmpeg call (``interruptible`` where the caller has no outer one).
    """
    if path is not None and is_still(path):
        try:
            frame = maker.from_still(path)
        except StreamError as err:
            if err.kind != "not_video":
                raise
            # A clip under a picture's name (renamed on the card): read it as what it is, else the
            # picture's error stands.
            try:
                with guard():
                    open_video(spec, path).close()
            except StreamError:
                raise err from None
            yield from _clip(maker, spec, path, stop, hw, guard)
            return
        if frame is not None:
            yield frame
        return
    yield from _clip(maker, spec, path, stop, hw, guard)


def _clip(maker: FrameMaker, spec: SourceSpec, path: Path | None, stop: threading.Event,
          hw: HwDecoder | None, guard: Callable[[], ContextManager[object]]) -> Iterator[Frame]:
    label = str(path) if path is not None else spec.label
    for attempt in range(2):  # the second, in software, when the hardware fails to decode
        with guard():
            container = open_video(spec, path, hw if attempt == 0 else None)
        if path is not None and _is_image_container(container):
            # A picture under a clip's name: judged as the still it is (one frame makes no video sighting).
            container.close()
            frame = maker.from_still(path)
            if frame is not None:
                yield frame
            return
        try:
            live = is_live(spec.kind, container.duration)
            frames = maker.from_container(container, stop, label=label, path=path, live=live)
            while True:
                with guard():
                    frame = next(frames, None)
                if frame is None:
                    return
                yield frame
        except HwDecodeFailed as exc:
            assert hw is not None
            hw.failed("decode", f"{label}: decoding failed: {exc}")
        finally:
            container.close()
