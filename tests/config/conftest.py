from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Config loading reads these; the test's own environment must not leak in."""
    for name in ("STATE_DIRECTORY", "CACHE_DIRECTORY", "CREDENTIALS_DIRECTORY", "BIRDSTREAM_CONFIG", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
