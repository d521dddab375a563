"""Sending one message through Apprise without letting a URL's secrets reach a log line.

An Apprise URL carries its secrets anywhere (``tgram://BOTTOKEN/CHAT``, ``ntfy://user:pass@host``,
``discord://ID/TOKEN``), so logs name a target only by its place in the config and its scheme
(``notify[0] (tgram://***)``), and Apprise's own log records pass a filter that masks every part
of every configured URL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from birdstream.redact import REDACTED

log = logging.getLogger(__name__)

APPRISE_LOGGER = "apprise"
# The HTTP library under Apprise logs request lines (paths with tokens in them) at DEBUG.
HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "requests")


def target_name(place: str, url: str) -> str:
    """How logs and metrics name a target: its config place and scheme, nothing secret."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "?"
    return f"{place} ({scheme}://{REDACTED})"


def url_secrets(url: str) -> set[str]:
    """Every part of a URL that may be secret: user, password, host, path segments, query values."""
    parts: set[str] = set()
    try:
        split = urlsplit(url)
        for piece in (split.username, split.password, split.hostname):
            if piece:
                parts.add(piece)
                parts.add(unquote(piece))
        for segment in split.path.split("/"):
            if segment:
                parts.add(segment)
                parts.add(unquote(segment))
        parts.update(v for _, v in parse_qsl(split.query) if v)
        rest = url.split("://", 1)[-1]
        parts.add(rest)
    except ValueError:
        parts.add(url)
    # Short pieces ("1", "on") would mask ordinary words; they are no secret on their own.
    return {p for p in parts if len(p) >= 4}


class SecretMask(logging.Filter):
    """Masks known secrets in Apprise's log records (message and arguments rendered first)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: list[str] = []

    def add(self, urls: Iterable[str]) -> None:
        with self._lock:
            found = set(self._secrets)
            for url in urls:
                found |= url_secrets(url)
            self._secrets = sorted(found, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is dropped, not shown raw
            return False
        record.msg, record.args = self.mask(message), None
        record.exc_info = None  # an exception's text may quote the URL
        record.exc_text = None
        return True


_MASK = SecretMask()
_INSTALLED = False
_INSTALL_LOCK = threading.Lock()


def install_mask(urls: Iterable[str]) -> SecretMask:
    """Mask these URLs' secrets in Apprise's log records; its chatty INFO/DEBUG lines are not shown."""
    global _INSTALLED
    _MASK.add(urls)
    with _INSTALL_LOCK:
        if not _INSTALLED:
            logger = logging.getLogger(APPRISE_LOGGER)
            logger.addFilter(_MASK)
            logger.setLevel(logging.WARNING)
            for name in HTTP_LOGGERS:
                logging.getLogger(name).addFilter(_MASK)
            _INSTALLED = True
    return _MASK


def send(url: str, title: str, body: str, attach: Path | None, timeout_s: float) -> bool:
    """One attempt to deliver; False when Apprise reports a failure (its reason is logged, masked)."""
    import apprise

    install_mask([url])
    sep = "&" if "?" in url else "?"
    timed = f"{url}{sep}rto={timeout_s:g}&cto={timeout_s:g}" if "rto=" not in url else url
    notifier = apprise.Apprise()
    if not notifier.add(timed):
        return False
    attachment = None
    if attach is not None and attach.is_file():
        attachment = apprise.AppriseAttachment()
        attachment.add(str(attach))
    try:
        return bool(notifier.notify(title=title, body=body, attach=attachment))
    except Exception as err:  # noqa: BLE001 - a plugin's failure is this target's failure, nothing more
        log.debug("apprise raised %s", type(err).__name__)
        return False
