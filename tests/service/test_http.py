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
from tests.support.daemon import wait_until


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


def test_connections_over_the_cap_get_503_and_the_cap_frees_up() -> None:
    import socket

    supervisor = Supervisor(health_file=None, notifier=Notifier(None))
    supervisor.tick()
    with HttpEndpoint("127.0.0.1", 0, supervisor.snapshot, max_connections=2).start() as endpoint:
        url = f"http://127.0.0.1:{endpoint.port}/healthz"
        held = [socket.create_connection(("127.0.0.1", endpoint.port)) for _ in range(2)]
        wait_until(lambda: get(url)[0] == 503, 10, "the third connection refused")
        status, ctype, body = get(url)
        assert status == 503 and "healthy" not in body
        for sock in held:
            sock.close()
        wait_until(lambda: get(url)[0] == 200, 10, "served again once the held connections closed")


def test_an_aborted_request_is_one_line_not_a_traceback(caplog: pytest.LogCaptureFixture,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    import socket
    import struct

    supervisor = Supervisor(health_file=None, notifier=Notifier(None))
    supervisor.tick()
    with HttpEndpoint("127.0.0.1", 0, supervisor.snapshot).start() as endpoint:
        for request in (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nabc",
                        b"GET /\x00\xff HTTP/1.1\r\nHost: x\r\n\r\n"):
            sock = socket.create_connection(("127.0.0.1", endpoint.port))
            sock.sendall(request)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, mid-answer
            sock.close()
        assert get(f"http://127.0.0.1:{endpoint.port}/healthz")[0] == 200
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    assert "Traceback" not in capfd.readouterr().err
