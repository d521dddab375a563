"""Weights download against a real HTTP server on 127.0.0.1: verified, atomic, cached, no partial files."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import birdstream
from birdstream.errors import DownloadError
from birdstream.model.download import fetch_model
from birdstream.model.registry import DEFAULT_WEIGHTS, KNOWN_WEIGHTS, PublishedWeights
from tests.support.planted import make_planted_checkpoint

NAME = "planted_test-weights"


@dataclass
class Served:
    """What the server answers for each URL path, and the paths it was asked for."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncate: set[str] = field(default_factory=set)
    no_length: set[str] = field(default_factory=set)  # sent without Content-Length, until the connection closes
    requests: list[str] = field(default_factory=list)
    base_url: str = ""


class _Handler(BaseHTTPRequestHandler):
    served: Served

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.served.requests.append(self.path)
        body = self.served.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if self.path in self.served.no_length:
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.served.truncate:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def server() -> Iterator[Served]:
    served = Served()
    handler = type("Handler", (_Handler,), {"served": served})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    served.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/mirror"
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def planted_bytes(tmp_path_factory) -> bytes:
    return make_planted_checkpoint(tmp_path_factory.mktemp("src") / "p.pt").read_bytes()


def _known(body: bytes) -> dict[str, PublishedWeights]:
    w = PublishedWeights(NAME, "vit_parallel_s16_18x2_ls_avg", hashlib.sha256(body).hexdigest(), 0.2, (96, 96))
    return {NAME: w}


def _url_path(name: str) -> str:
    return f"/mirror/{name}/resolve/main/{name}.pt"


def _cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_published_url_layout():
    w = KNOWN_WEIGHTS[DEFAULT_WEIGHTS]
    assert w.url() == (
        "https://huggingface.co/birder-project/vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-arabian-peninsula"
        "/resolve/main/vit_parallel_s16_18x2_ls_avg_data2vec-intermediate-arabian-peninsula.pt"
    )
    assert w.sha256 == "561734d8271eff9831ab4fa8a0e8f80b6bfeb17ea456ea0fc184315b9aa2d837"


def test_download_success_with_progress(server, planted_bytes, tmp_path):
    server.files[_url_path(NAME)] = planted_bytes
    seen: list[tuple[int, int | None]] = []
    cache = tmp_path / "cache"
    path = fetch_model(NAME, cache, lambda done, total: seen.append((done, total)), base_url=server.base_url,
                       known=_known(planted_bytes))
    assert path == cache / f"{NAME}.pt"
    assert path.read_bytes() == planted_bytes
    assert _cache_files(cache) == [f"{NAME}.pt"]
    assert seen[0] == (0, len(planted_bytes)) and seen[-1] == (len(planted_bytes), len(planted_bytes))


def test_cached_file_means_no_request(server, planted_bytes, tmp_path):
    server.files[_url_path(NAME)] = planted_bytes
    known = _known(planted_bytes)
    fetch_model(NAME, tmp_path, base_url=server.base_url, known=known)
    assert len(server.requests) == 1
    net, info = birdstream.load_pretrained_model(NAME, cache_dir=tmp_path, base_url=server.base_url,
                                                 known_weights=known)
    assert len(server.requests) == 1
    assert info.name == NAME and info.sha256 == known[NAME].sha256
    assert info.model_id == f"{NAME}@{known[NAME].sha256[:12]}"


def test_env_vars_choose_cache_and_mirror(server, planted_bytes, tmp_path, monkeypatch):
    server.files[_url_path(NAME)] = planted_bytes
    monkeypatch.setenv("BIRDSTREAM_CACHE", str(tmp_path / "envcache"))
    monkeypatch.setenv("BIRDSTREAM_MODEL_URL", server.base_url)
    path = fetch_model(NAME, known=_known(planted_bytes))
    assert path == tmp_path / "envcache" / f"{NAME}.pt"


def test_sha256_mismatch_leaves_nothing(server, tmp_path):
    from prometheus_client import REGISTRY

    def count() -> float:
        return REGISTRY.get_sample_value("birdstream_model_downloads_total", {"result": "sha256_mismatch"}) or 0.0

    before = count()
    # The real registry entry, served with the wrong bytes.
    server.files[_url_path(DEFAULT_WEIGHTS)] = b"not the published weights" * 100
    with pytest.raises(DownloadError) as exc:
        fetch_model(DEFAULT_WEIGHTS, tmp_path / "c", base_url=server.base_url)
    assert count() == before + 1
    assert "sha256 mismatch" in str(exc.value) and "\n" not in str(exc.value)
    assert server.base_url in str(exc.value)
    assert _cache_files(tmp_path / "c") == []


def test_corrupt_cached_file_is_replaced(server, planted_bytes, tmp_path):
    server.files[_url_path(NAME)] = planted_bytes
    (tmp_path / f"{NAME}.pt").write_bytes(b"half a file")
    path = fetch_model(NAME, tmp_path, base_url=server.base_url, known=_known(planted_bytes))
    assert path.read_bytes() == planted_bytes
    assert len(server.requests) == 1


def test_interrupted_transfer_leaves_nothing(server, planted_bytes, tmp_path):
    server.files[_url_path(NAME)] = planted_bytes
    server.truncate.add(_url_path(NAME))
    with pytest.raises(DownloadError, match="interrupted"):
        fetch_model(NAME, tmp_path, base_url=server.base_url, known=_known(planted_bytes))
    assert _cache_files(tmp_path) == []


def test_http_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_model(DEFAULT_WEIGHTS, tmp_path, base_url=server.base_url)
    assert _cache_files(tmp_path) == []


def test_unreachable_server(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch_model(DEFAULT_WEIGHTS, tmp_path, base_url=f"http://127.0.0.1:{port}")
    assert _cache_files(tmp_path) == []


def test_credentials_are_redacted(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as exc:
        fetch_model(DEFAULT_WEIGHTS, tmp_path, base_url=f"http://user:secret@127.0.0.1:{port}")
    assert "secret" not in str(exc.value)


def test_unknown_name(tmp_path):
    with pytest.raises(DownloadError, match="unknown weights name"):
        fetch_model("no_such_weights", tmp_path)


def test_unwritable_cache(server, planted_bytes, tmp_path):
    import os

    if os.geteuid() == 0:
        # root ignores directory permissions; a file standing where the cache directory should be fails for everyone
        cache = tmp_path / "file_not_dir"
        cache.write_text("x")
        expected = "cannot create the model cache"
    else:
        cache = tmp_path / "ro"
        cache.mkdir()
        cache.chmod(0o500)
        expected = "cannot write to the model cache"
    server.files[_url_path(NAME)] = planted_bytes
    with pytest.raises(DownloadError, match=expected):
        fetch_model(NAME, cache, base_url=server.base_url, known=_known(planted_bytes))
    assert server.requests == []


def test_fetch_model_command_reports_a_bad_download_in_one_line_and_leaves_nothing(server, tmp_path):
    from tests.support.cli import run_cli

    server.files[_url_path(DEFAULT_WEIGHTS)] = b"not the published weights" * 4096
    cache = tmp_path / "cache"
    result = run_cli("fetch-model", "--cache-dir", str(cache), env={"BIRDSTREAM_MODEL_URL": server.base_url},
                     cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "sha256 mismatch" in errors[0] and "Traceback" not in result.stderr
    assert "MiB" in result.stderr  # the progress line was drawn
    assert server.requests == [_url_path(DEFAULT_WEIGHTS)]
    assert _cache_files(cache) == []


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "no-length"])
def test_more_bytes_than_the_published_size_are_refused(server, tmp_path, announced):
    body = os.urandom(3 * 1024 * 1024)
    # The digest matches: only the size can refuse it.
    known = {NAME: PublishedWeights(NAME, "vit_parallel_s16_18x2_ls_avg", hashlib.sha256(body).hexdigest(),
                                    1.0, (96, 96))}
    server.files[_url_path(NAME)] = body
    if not announced:
        server.no_length.add(_url_path(NAME))
    with pytest.raises(DownloadError) as exc:
        fetch_model(NAME, tmp_path, base_url=server.base_url, known=known)
    assert "more than the published size" in str(exc.value) and "\n" not in str(exc.value)
    assert _cache_files(tmp_path) == []
