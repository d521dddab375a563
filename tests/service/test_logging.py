"""Log lines: one per record, journald priority prefixes, credentials redacted everywhere."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from birdstream.redact import redact_text as redact_url
from birdstream.service.logsetup import set_level, setup_logging


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)


def test_redact_url() -> None:
    assert redact_url("open rtsp://admin:s3cr%40t@10.0.0.5:554/s failed") == "open rtsp://***@10.0.0.5:554/s failed"
    assert redact_url("http://user@host/x and mqtts://a:b@broker:8883") == "http://***@host/x and mqtts://***@broker:8883"
    assert redact_url("no url, mail me@example.org /dev/video0") == "no url, mail me@example.org /dev/video0"


def test_terminal_lines(root_logging: None) -> None:
    out = io.StringIO()
    setup_logging("INFO", stream=out, journal=False)
    log = logging.getLogger("birdstream.test")
    log.debug("hidden")
    log.warning("cannot open %s", "rtsp://admin:hunter2@cam/s")
    try:
        raise ValueError("bad rtsp://u:pw@x/\nsecond line")
    except ValueError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("WARNING birdstream.test: cannot open rtsp://***@cam/s")
    assert "Traceback" in lines[1] and "ValueError: bad rtsp://***@x/\\nsecond line" in lines[1]
    assert "hunter2" not in out.getvalue() and "u:pw" not in out.getvalue()
    set_level("DEBUG")
    log.debug("shown now")
    assert out.getvalue().splitlines()[-1].endswith("DEBUG birdstream.test: shown now")


def test_journal_lines_have_priority_and_no_timestamp(root_logging: None) -> None:
    out = io.StringIO()
    setup_logging("DEBUG", stream=out, journal=True)
    log = logging.getLogger("birdstream.x")
    log.error("boom")
    log.info("fine")
    log.debug("detail")
    assert out.getvalue().splitlines() == ["<3>birdstream.x: boom", "<6>birdstream.x: fine", "<7>birdstream.x: detail"]


def test_setup_twice_keeps_one_handler(root_logging: None) -> None:
    out = io.StringIO()
    setup_logging("INFO", stream=out, journal=True)
    setup_logging("INFO", stream=out, journal=True)
    logging.getLogger("birdstream.y").info("once")
    assert out.getvalue() == "<6>birdstream.y: once\n"
