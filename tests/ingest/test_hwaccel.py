"""Hardware decoding: a missing or failing device falls back to software, once, logged and counted.

These run against real generated videos and the real PyAV/FFmpeg. Without a GPU (the usual test
machine) asking for cuda must fall back; with one, a test decodes on it for real.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from birdstream.config import ConfigError, config_from_dict
from birdstream.ingest import StreamReader, iter_frames
from birdstream.ingest.hwaccel import HwDecoder
from birdstream.station import wiring
from tests.ingest.conftest import RED
from tests.support.devices import nvidia_gpu_present
from tests.support.http_media import HttpMediaServer
from tests.support.video import Box, make_video
from tests.support.options import source_spec

HW_LOGGER = "birdstream.ingest.hwaccel"


GPU = nvidia_gpu_present()
no_gpu_only = pytest.mark.skipif(GPU, reason="a GPU is present: cuda decodes for real, no fallback to see")


@pytest.fixture(scope="module")
def hwclip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s, 10 fps, 64x48 H.264; a red box from 0.5 s."""
    return make_video(tmp_path_factory.mktemp("hw") / "hw.mp4", duration_s=1.0, fps=10, size=(64, 48), gop=5,
                      objects=[Box(RED, (20, 10, 20, 20), start_s=0.5)])


def fallbacks(stream: str, reason: str) -> float:
    return REGISTRY.get_sample_value("birdstream_ingest_hwaccel_fallbacks_total",
                                     {"stream": stream, "reason": reason}) or 0.0


def hw_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == HW_LOGGER and r.levelno == level]


def pictures(path: Path, **kw) -> list[np.ndarray]:
    return [f.image for f in iter_frames(source_spec(id=kw.pop("id", "sw"), url=str(path), sample_fps=0, **kw),
                                         (32, 32))]


@no_gpu_only
def test_cuda_without_a_gpu_reads_in_software_warns_once_and_counts(hwclip: Path, collector, readers,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, HW_LOGGER)
    before = fallbacks("hw-cuda", "device")
    spec = source_spec(id="hw-cuda", url=str(hwclip), sample_fps=0, loop=True, hwaccel="cuda")
    r = StreamReader(spec, input_size=(32, 32), emit=collector.emit, on_status=collector.on_status)
    readers.append(r)
    r.start()
    collector.wait(lambda: len(collector.frames) >= 25, what="three passes over the clip (reopened each time)")
    r.stop()
    assert r.join(5.0)
    expected = pictures(hwclip)
    assert len(expected) == 10
    for i, frame in enumerate(collector.frames[:25]):  # the same content as a plain software decode
        assert np.array_equal(frame.image, expected[i % 10]), f"frame {i} differs"
    warnings = hw_records(caplog, logging.WARNING)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # reopening does not retry the device
    text = warnings[0].getMessage()
    assert "stream hw-cuda" in text and "cuda" in text and "software" in text and "again in 1 h" in text
    assert fallbacks("hw-cuda", "device") - before == 1
    assert REGISTRY.get_sample_value("birdstream_ingest_hwaccel_active", {"stream": "hw-cuda"}) == 0.0


@no_gpu_only
def test_fallback_line_names_the_stream_without_its_password(hwclip: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, HW_LOGGER)
    with HttpMediaServer(hwclip.parent) as srv:
        url = srv.url(hwclip.name).replace("http://", "http://bird:s3cret@")
        got = list(iter_frames(source_spec(id="hw-web", url=url, sample_fps=0, hwaccel="cuda"), (32, 32)))
    assert len(got) == 10
    (warning,) = hw_records(caplog, logging.WARNING)
    assert "hw-web" in warning.getMessage() and "127.0.0.1" in warning.getMessage()
    assert "s3cret" not in caplog.text


@no_gpu_only
def test_offline_folder_falls_back_once_for_all_its_clips(hwclip: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, HW_LOGGER)
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(hwclip.read_bytes())
    before = fallbacks("hw-card", "device")
    got = pictures(tmp_path, id="hw-card", hwaccel="cuda")
    expected = pictures(hwclip)
    assert len(got) == 20
    assert all(np.array_equal(a, b) for a, b in zip(got, expected + expected))
    assert len(hw_records(caplog, logging.WARNING)) == 1
    assert fallbacks("hw-card", "device") - before == 1


@no_gpu_only
def test_auto_without_a_device_decodes_in_software_quietly(hwclip: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, HW_LOGGER)
    before = sum(fallbacks("hw-auto", r) for r in ("unavailable", "unsupported", "device", "codec", "open"))
    got = pictures(hwclip, id="hw-auto", hwaccel="auto")
    assert all(np.array_equal(a, b) for a, b in zip(got, pictures(hwclip), strict=True))
    assert hw_records(caplog, logging.WARNING) == []
    (info,) = hw_records(caplog, logging.INFO)
    assert "auto" in info.getMessage() and "software" in info.getMessage() and "cuda" in info.getMessage()
    after = sum(fallbacks("hw-auto", r) for r in ("unavailable", "unsupported", "device", "codec", "open"))
    assert after == before  # preferring software when nothing works is not a failure


@pytest.mark.parametrize(("kind", "reason"), [("vaapi", "unavailable"), ("foo", "unavailable")])
def test_a_type_missing_from_this_ffmpeg_build_is_never_retried(kind: str, reason: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """vaapi is not in the PyPI wheel's FFmpeg; a build without it will not grow it later."""
    from av.codec.hwaccel import hwdevices_available  # noqa: PLC0415

    if kind in hwdevices_available():
        pytest.skip(f"this FFmpeg build has {kind}")
    caplog.set_level(logging.INFO, HW_LOGGER)
    now = [0.0]
    hw = HwDecoder(kind, None, stream=f"hw-{kind}", label=f"stream hw-{kind} (x.mp4)", clock=lambda: now[0])
    before = fallbacks(f"hw-{kind}", reason)
    assert hw.accel() is None
    now[0] += 10 * 3600
    assert hw.accel() is None
    (warning,) = hw_records(caplog, logging.WARNING)
    assert "no " + kind in warning.getMessage() and "again" not in warning.getMessage()
    assert fallbacks(f"hw-{kind}", reason) - before == 1


@no_gpu_only
def test_a_failed_device_is_tried_again_after_an_hour(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, HW_LOGGER)
    now = [0.0]
    hw = HwDecoder("cuda", "0", stream="hw-retry", label="stream hw-retry (x.mp4)", clock=lambda: now[0])
    assert hw.accel() is None
    now[0] += 3599
    assert hw.accel() is None  # remembered: no new attempt, no new line
    assert len(hw_records(caplog, logging.WARNING)) == 1
    now[0] += 2
    assert hw.accel() is None  # due again: tried, fails again, says so again
    warnings = hw_records(caplog, logging.WARNING)
    assert len(warnings) == 2 and "'0'" in warnings[1].getMessage()


def test_config_rejects_an_unknown_type_naming_the_key(tmp_path: Path) -> None:
    def load(**stream) -> object:
        return config_from_dict({"streams": [{"id": "a", "url": "rtsp://cam/s", **stream}]}, base_dir=tmp_path)

    with pytest.raises(ConfigError) as err:
        load(hwaccel="cdua")
    assert "streams[0].hwaccel" in str(err.value) and "did you mean 'cuda'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load(hwaccel="foo")
    assert "streams[0].hwaccel" in str(err.value) and "auto, cuda, vaapi, qsv" in str(err.value)
    with pytest.raises(ConfigError, match=r"streams\[0\]\.hwaccel_device: set hwaccel too"):
        load(hwaccel_device="/dev/dri/renderD128")
    config = load(hwaccel="CUDA", hwaccel_device=1)  # YAML reads a bare 1 as a number
    spec = wiring.source_spec(config.streams[0])
    assert (spec.hwaccel, spec.hwaccel_device) == ("cuda", "1")
    assert wiring.source_spec(load().streams[0]).hwaccel is None  # software by default


@pytest.mark.skipif(not GPU, reason="no NVIDIA GPU here (/dev/nvidia0 absent): nothing to decode on")
def test_cuda_decodes_on_the_gpu(hwclip: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, HW_LOGGER)
    got = pictures(hwclip, id="hw-gpu", hwaccel="cuda")
    assert hw_records(caplog, logging.WARNING) == []
    assert REGISTRY.get_sample_value("birdstream_ingest_hwaccel_active", {"stream": "hw-gpu"}) == 1.0
    expected = pictures(hwclip)
    assert len(got) == len(expected) == 10
    for a, b in zip(got, expected):  # NVDEC's output goes through NV12: allow rounding
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3
    assert np.abs(got[-1][15, 15].astype(int) - RED).max() < 40  # the red box is there


def test_hardware_pictures_are_asked_to_stay_on_the_device() -> None:
    for kind in ("cuda", "vaapi"):
        accel = HwDecoder(kind, None, stream="own", label="own")._make(kind)
        assert accel.is_hw_owned, kind  # FFmpeg does not download every picture; the converter does, when sampled
    assert HwDecoder("cuda", None, stream="own", label="own")._make("cuda").options["primary_ctx"] == "1"


@pytest.mark.skipif(not GPU, reason="no NVIDIA GPU here (/dev/nvidia0 absent): nothing to decode on")
def test_cuda_pictures_stay_on_the_gpu_until_the_converter_downloads_one(hwclip: Path) -> None:
    import av

    from birdstream.ingest.convert import Converter

    accel = HwDecoder("cuda", None, stream="hw-own", label="hw-own")._make("cuda")
    with av.open(str(hwclip), hwaccel=accel) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 10 and all(f.format.name == "cuda" for f in decoded)  # nothing came down
    out = Converter((32, 32), None, "hw-own", want_full=True).video(decoded[-1])
    assert out.image.shape == (32, 32, 3) and out.full is not None and out.full.shape == (48, 64, 3)
    assert np.abs(out.image[15, 15].astype(int) - RED).max() < 40
    cropped = Converter((32, 32), (16, 8, 32, 32), "hw-own").video(decoded[-1])
    assert cropped.image.shape == (32, 32, 3)
