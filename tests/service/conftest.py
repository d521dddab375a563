from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.notify import NotifyReceiver


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifyReceiver]:
    receiver = NotifyReceiver(tmp_path / "notify.sock")
    try:
        yield receiver
    finally:
        receiver.close()
