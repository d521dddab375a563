"""An RTSP redirect to another host does not get the camera's password (real sockets both sides)."""

from __future__ import annotations

import pytest

from birdstream.ingest import StreamError, iter_frames
from tests.support.options import source_spec
from tests.support.rtsp_redirect import RtspResponder


def open_once(url: str) -> StreamError:
    with pytest.raises(StreamError) as caught:
        list(iter_frames(source_spec("cam", url, open_timeout_s=3, read_timeout_s=3), (16, 16)))
    return caught.value


def test_a_redirect_to_another_host_is_refused_and_gets_no_password() -> None:
    with RtspResponder("127.0.0.2") as elsewhere, RtspResponder("127.0.0.1") as camera:
        camera.redirect_to = elsewhere.url()
        err = open_once(camera.url(userinfo="viewer:s3cret"))
    assert elsewhere.requests == []
    assert err.kind == "auth" and "redirects to another host (127.0.0.2:" in str(err)
    assert "s3cret" not in str(err) and not any("Authorization" in r for r in camera.requests)


def test_without_credentials_a_redirect_is_followed_as_before() -> None:
    with RtspResponder("127.0.0.2") as elsewhere, RtspResponder("127.0.0.1") as camera:
        camera.redirect_to = elsewhere.url()
        open_once(camera.url())
    assert elsewhere.requests  # nothing secret to protect: FFmpeg followed it
