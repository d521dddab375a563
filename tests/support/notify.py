"""A real sd_notify receiver: an AF_UNIX datagram socket to set as NOTIFY_SOCKET."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path


class NotifyReceiver:
    """Collects every datagram sent to *path*; ``messages`` holds them in arrival order."""

    def __init__(self, path: Path | str) -> None:
        self.address = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind_to = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        self.sock.bind(bind_to)
        self.messages: list[str] = []

    def drain(self, wait_s: float = 0.0) -> list[str]:
        """Read what is queued (waiting up to wait_s for the first datagram); returns the new messages."""
        new: list[str] = []
        if wait_s > 0:
            self.sock.settimeout(wait_s)
        else:
            self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, TimeoutError):
                break
            new.append(data.decode())
            self.sock.setblocking(False)
        self.messages += new
        return new

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 10.0, start: int = 0) -> int:
        """Index of the first message from *start* on matching *predicate*; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(start, len(self.messages)):
                if predicate(self.messages[i]):
                    return i
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching notification in {timeout} s; got {self.messages[start:][-20:]}")
            self.drain(min(remaining, 0.5))

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)
