"""https sources against a real local HTTPS server with self-signed certificates (openssl CLI):
refused by default, read with the camera's CA in ca_file, and the password never reaches a refused
server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from birdstream.ingest import StreamError, iter_frames
from tests.support.options import source_spec
from tests.support.http_media import HttpMediaServer
from tests.support.video import make_video

CREDENTIALS = "viewer:s3cret-pw"


def self_signed(folder: Path, name: str, san: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(key),
                    "-out", str(cert), "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tls-site")
    make_video(root / "clip.mp4", duration_s=1.0, fps=10, size=(96, 64), gop=5)
    return root


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("certs")
    return {"camera": self_signed(folder, "camera", "IP:127.0.0.1"),
            "evil": self_signed(folder, "evil.example", "DNS:evil.example")}


def read(url: str, **kw) -> list:
    return list(iter_frames(source_spec("cam", url, sample_fps=2, open_timeout_s=5, read_timeout_s=5, **kw),
                            (16, 16)))


def test_a_self_signed_camera_is_refused_by_default_and_gets_no_password(site: Path, certs) -> None:
    with HttpMediaServer(site, tls=certs["camera"], basic_auth=CREDENTIALS) as srv:
        with pytest.raises(StreamError) as caught:
            read(srv.url("clip.mp4", CREDENTIALS))
        assert srv.requests == []  # the handshake failed: no request, no Authorization header
    err = caught.value
    assert err.kind == "tls" and "certificate not trusted" in str(err) and "s3cret" not in str(err)


def test_the_cameras_own_ca_in_ca_file_is_trusted(site: Path, certs) -> None:
    with HttpMediaServer(site, tls=certs["camera"], basic_auth=CREDENTIALS) as srv:
        frames = read(srv.url("clip.mp4", CREDENTIALS), ca_file=str(certs["camera"][0]))
        assert any(auth for _, auth in srv.requests)
    assert len(frames) == 2


def test_a_trusted_certificate_for_another_host_is_refused(site: Path, certs) -> None:
    with HttpMediaServer(site, tls=certs["evil"], basic_auth=CREDENTIALS) as srv:
        with pytest.raises(StreamError, match="certificate not trusted"):
            read(srv.url("clip.mp4", CREDENTIALS), ca_file=str(certs["evil"][0]))
        assert srv.requests == []


def test_tls_verify_false_reads_a_self_signed_camera(site: Path, certs) -> None:
    with HttpMediaServer(site, tls=certs["camera"]) as srv:
        assert len(read(srv.url("clip.mp4"), tls_verify=False)) == 2
