"""Downloading published weights once into a cache: sha256-verified, atomic, never a partial file left."""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from birdstream.errors import DownloadError
from birdstream.redact import redact_url
from birdstream.model.checkpoint import sha256_file
from birdstream.model.metrics import DOWNLOADS
from birdstream.model.registry import DEFAULT_BASE_URL, KNOWN_WEIGHTS, PublishedWeights

logger = logging.getLogger(__name__)

CACHE_ENV = "BIRDSTREAM_CACHE"
BASE_URL_ENV = "BIRDSTREAM_MODEL_URL"

ProgressCallback = Callable[[int, int | None], None]
"""Called with (bytes received so far, total bytes or None when the server does not say)."""


def default_cache_dir() -> Path:
    """``$BIRDSTREAM_CACHE``, else ``~/.cache/birdstream``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "birdstream"


def default_base_url() -> str:
    """``$BIRDSTREAM_MODEL_URL`` (a mirror laid out as ``<base>/<name>/resolve/main/<name>.pt``), else Hugging Face."""
    return os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


def published(name: str, known: Mapping[str, PublishedWeights] | None = None) -> PublishedWeights:
    """The registry entry for ``name`` (``known`` replaces the built-in registry, e.g. for a private mirror)."""
    known = KNOWN_WEIGHTS if known is None else known
    try:
        return known[name]
    except KeyError:
        names = ", ".join(sorted(known))
        raise DownloadError(f"{name}: unknown weights name (known: {names}; or give a path to a .pt file)") from None


def fetch_model(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    *,
    base_url: str | None = None,
    timeout_s: float = 60.0,
    known: Mapping[str, PublishedWeights] | None = None,
) -> Path:
    """Return the cached path of published weights ``name``, downloading and verifying them first if needed."""
    return fetch_model_verified(name, cache_dir, progress, base_url=base_url, timeout_s=timeout_s, known=known)[0]


def fetch_model_verified(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    *,
    base_url: str | None = None,
    timeout_s: float = 60.0,
    known: Mapping[str, PublishedWeights] | None = None,
) -> tuple[Path, str]:
    """Like fetch_model, and also return the file's sha256 (already computed while verifying)."""
    weights = published(name, known)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / weights.file_name
    if target.is_file():
        digest = sha256_file(target)
        if digest == weights.sha256:
            logger.debug("using cached weights %s", target)
            return target, digest
        logger.warning("cached weights %s fail the sha256 check; downloading them again", target)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"{cache}: cannot create the model cache directory ({err.strerror})") from None
    url = weights.url(base_url or default_base_url())
    _download(url, target, weights.sha256, progress, timeout_s, weights.max_bytes)
    return target, weights.sha256


def _download(url: str, target: Path, sha256: str, progress: ProgressCallback | None, timeout_s: float,
              max_bytes: int | None = None) -> None:
    """``max_bytes``: refuse a server that announces or sends more (a wrong URL or a hostile mirror must
    not fill the disk before the sha256 check could reject it)."""
    shown = redact_url(url)
    logger.info("downloading %s to %s", shown, target)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as err:
        raise DownloadError(f"{target.parent}: cannot write to the model cache ({err.strerror})") from None
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            try:
                req = urllib.request.Request(url, headers={"User-Agent": "birdstream"})
                with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    _check_size(shown, total or 0, max_bytes)
                    if progress is not None:
                        progress(0, total)
                    while chunk := resp.read(1 << 20):
                        _check_size(shown, received + len(chunk), max_bytes)
                        _write(out, chunk, target)
                        h.update(chunk)
                        received += len(chunk)
                        if progress is not None:
                            progress(received, total)
            except DownloadError:
                raise
            except urllib.error.HTTPError as err:
                DOWNLOADS.labels("http_error").inc()
                raise DownloadError(f"{shown}: HTTP {err.code} {err.reason}") from None
            except urllib.error.URLError as err:
                DOWNLOADS.labels("connect_error").inc()
                raise DownloadError(f"{shown}: cannot connect ({err.reason})") from None
            except (OSError, ValueError, http.client.HTTPException) as err:  # reset, timeout, IncompleteRead
                DOWNLOADS.labels("interrupted").inc()
                raise DownloadError(
                    f"{shown}: transfer interrupted after {received} bytes ({type(err).__name__}: {err})"
                ) from None
            if total is not None and received != total:
                DOWNLOADS.labels("interrupted").inc()
                raise DownloadError(f"{shown}: transfer interrupted: got {received} of {total} bytes")
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as err:
                raise DownloadError(f"{target}: cannot write ({err.strerror})") from None
        digest = h.hexdigest()
        if digest != sha256:
            DOWNLOADS.labels("sha256_mismatch").inc()
            raise DownloadError(f"{shown}: sha256 mismatch (got {digest}, expected {sha256}); file discarded")
        os.replace(tmp, target)
        DOWNLOADS.labels("ok").inc()
        logger.info("saved verified weights %s (%d bytes)", target, received)
    finally:
        tmp.unlink(missing_ok=True)


def _check_size(shown: str, size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        DOWNLOADS.labels("too_large").inc()
        raise DownloadError(f"{shown}: the server sends more than the published size ({size} > {max_bytes} bytes); "
                            f"download refused, nothing kept")


def _write(out: io.BufferedWriter, chunk: bytes, target: Path) -> None:
    try:
        out.write(chunk)
    except OSError as err:  # disk full, read-only cache: not a network problem
        raise DownloadError(f"{target}: cannot write ({err.strerror})") from None
