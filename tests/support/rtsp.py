"""A real GStreamer RTSP server on a free loopback port, for tests: start, kill, restart.

The server is `tests/support/rtsp_server.py`, run by the system `/usr/bin/python3` (the one with
`gi`). It serves an H.264 MP4 (make one with `tests.support.video.make_video`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests.support.mosquitto import free_port

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")


def system_python() -> str:
    """The interpreter with GStreamer's `gi` bindings ($BIRDSTREAM_GI_PYTHON, else /usr/bin/python3)."""
    return os.environ.get("BIRDSTREAM_GI_PYTHON", "/usr/bin/python3")


def gi_available() -> bool:
    """Whether the system python has GStreamer's RTSP server bindings."""
    try:
        r = subprocess.run(
            [system_python(), "-c", "import gi; gi.require_version('GstRtspServer', '1.0');"
             "from gi.repository import GstRtspServer"],
            capture_output=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


class RtspServer:
    """One RTSP server process serving `video` at rtsp://127.0.0.1:<port><mount>."""

    def __init__(self, video: str | os.PathLike, *, port: int | None = None, mount: str = "/stream",
                 user: str | None = None, password: str | None = None) -> None:
        self.video = Path(video)
        self.port = port or free_port()
        self.mount = mount
        self.user, self.password = user, password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.url_with(self.user, self.password)

    def url_with(self, user: str | None = None, password: str | None = None, *,
                 mount: str | None = None, port: int | None = None) -> str:
        cred = f"{user}:{password}@" if user is not None else ""
        return f"rtsp://{cred}127.0.0.1:{port or self.port}{mount or self.mount}"

    def start(self, timeout: float = 20.0) -> RtspServer:
        args = [system_python(), str(SERVER_SCRIPT), str(self.port), str(self.video), self.mount]
        if self.user is not None:
            args += [self.user, self.password or ""]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.wait_listening(timeout)
        return self

    def wait_listening(self, timeout: float) -> None:
        """Wait until the port accepts connections; raise if the server died or the deadline passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"RTSP server exited with {self.proc.returncode}: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"RTSP server not listening on 127.0.0.1:{self.port} after {timeout} s")

    def kill(self) -> None:
        """Kill the server abruptly (a camera losing power)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
            self.proc = None

    def restart(self, timeout: float = 20.0) -> RtspServer:
        self.kill()
        return self.start(timeout)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
