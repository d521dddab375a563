"""/healthz and /metrics over real HTTP on a free loopback port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from birdstream.config import HttpConfig
from birdstream.errors import BirdstreamError
from birdstream.service.http import HttpEndpoint, start_http
from birdstream.service.sdnotify import Notifier
from birdstream.service.supervisor import Supervisor


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_healthz_follows_the_checks_and_metrics_are_served(tmp_path: Path) -> None:
    failing: list[str] = []
    supervisor = Supervisor(health_file=tmp_path / "h.json", notifier=Notifier(None))
    supervisor.add_check("engine", lambda: failing[0] if failing else None)
    supervisor.tick()
    with HttpEndpoint("127.0.0.1", 0, supervisor.snapshot).start() as endpoint:
        base = f"http://127.0.0.1:{endpoint.port}"
        status, ctype, body = get(base + "/healthz")
        assert (status, ctype, json.loads(body)["healthy"]) == (200, "application/json", True)

        failing.append("engine: no heartbeat for 99 s")
        supervisor.tick()
        status, _, body = get(base + "/healthz")
        assert status == 503 and json.loads(body)["reasons"] == ["engine: no heartbeat for 99 s"]

        status, ctype, body = get(base + "/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        assert "birdstream_healthy 0.0" in body
        assert 'birdstream_health_check_failures_total{check="engine"}' in body
        assert get(base + "/nope")[0] == 404


def test_disabled_and_busy_port(tmp_path: Path) -> None:
    supervisor = Supervisor(health_file=None, notifier=Notifier(None))
    assert start_http(HttpConfig(), supervisor.snapshot) is None
    with HttpEndpoint("127.0.0.1", 0, supervisor.snapshot) as first:
        with pytest.raises(BirdstreamError, match=rf"http: cannot listen on 127.0.0.1:{first.port}"):
            start_http(HttpConfig(enabled=True, port=first.port), supervisor.snapshot)


def test_an_idle_connection_is_closed_and_does_not_block_others() -> None:
    import socket
    import time

    supervisor = Supervisor(health_file=None, notifier=Notifier(None))
    supervisor.tick()
    with HttpEndpoint("127.0.0.1", 0, supervisor.snapshot).start() as endpoint:
        idle = socket.create_connection(("127.0.0.1", endpoint.port))
        idle.sendall(b"GET /heal")  # half a request line, then silence
        assert get(f"http://127.0.0.1:{endpoint.port}/healthz")[0] in (200, 503)
        idle.settimeout(30)  # without a server-side timeout this recv would raise TimeoutError
        started = time.monotonic()
        assert idle.recv(1024) == b""  # the server closed the idle connection
        assert time.monotonic() - started < 30
        idle.close()
