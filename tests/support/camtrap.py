"""Validate a Camtrap DP package offline with frictionless, as tdwg/camtrap-dp validates its own example.

The descriptor is validated as written (official 1.0.2 URLs); the HTTP session frictionless uses
answers those URLs from the copies under tests/data/camtrap-dp-1.0.2/ instead of the network.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import frictionless
import requests
from requests.adapters import BaseAdapter
from urllib3.response import HTTPResponse

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "camtrap-dp-1.0.2"
_FRICTIONLESS_ASSETS = Path(frictionless.__file__).parent / "assets" / "profiles"
LOCAL = {
    "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/": SCHEMAS,
    "https://specs.frictionlessdata.io/schemas/": SCHEMAS,
    "http://json.schemastore.org/geojson.json": _FRICTIONLESS_ASSETS / "geojson.json",
}


class _Offline(BaseAdapter):
    """Serves the known schema URLs from local files; any other URL is refused (no network in tests)."""

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        url = request.url or ""
        for prefix, local in LOCAL.items():
            if url.startswith(prefix):
                path = local / url[len(prefix):] if local.is_dir() else local
                if path.is_file():
                    return self._answer(request, 200, path.read_bytes())
        return self._answer(request, 404, b"not available offline")

    @staticmethod
    def _answer(request: requests.PreparedRequest, status: int, body: bytes) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.raw = HTTPResponse(body=io.BytesIO(body), status=status, preload_content=False)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def validation_errors(package: Path) -> list[str]:
    """Every error frictionless finds in the package at ``package`` (empty when valid)."""
    session = requests.Session()
    session.mount("http://", _Offline())
    session.mount("https://", _Offline())
    descriptor = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))
    here = os.getcwd()
    os.chdir(package)  # frictionless reads resource paths against the working folder (frictionless-py#956)
    try:
        with frictionless.system.use_context(http_session=session):
            report = frictionless.validate(descriptor)
    finally:
        os.chdir(here)
    return [f"{err.type}: {err.message}" for err in report.errors] + [
        f"{task.name}: {err.type}: {err.message}" for task in report.tasks for err in task.errors]
