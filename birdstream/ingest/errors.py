"""Turn FFmpeg/OS/PIL failures into one-line, credential-free errors a person can act on."""

from __future__ import annotations

import errno
from typing import Literal

import av

from birdstream.errors import SourceError, first_line
from birdstream.redact import printable, redact_text

ErrorKind = Literal[
    "auth", "not_found", "permission", "unreachable", "timeout", "unsupported", "eof", "not_video",
    "stalled", "too_large", "io", "tls",
]

_WHAT: dict[str, str] = {
    "auth": "authentication failed (check user and password)",
    "not_found": "not found",
    "permission": "permission denied",
    "unreachable": "unreachable (check the address, port, name and network)",
    "timeout": "timed out",
    "unsupported": "unsupported codec or format",
    "eof": "end of file",
    "not_video": "not a readable video or image",
    "stalled": "stalled (no frame received)",
    "too_large": "image too large",
    "io": "read error",
    "tls": "TLS connection refused",
}

_UNREACHABLE = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN,
                errno.ECONNRESET, errno.EPIPE, errno.ENETDOWN, errno.ECONNABORTED}


class StreamError(SourceError):
    """A source failure with a kind (auth, not_found, unreachable, timeout, ...) and one-line text."""

    def __init__(self, label: str, kind: ErrorKind, detail: str | None = None) -> None:
        self.kind = kind
        self.label = label
        self.detail = redact_text(detail) if detail else None
        text = f"{printable(label)}: {_WHAT[kind]}"  # a file name's control characters stay visible
        if self.detail and self.detail.lower() not in _WHAT[kind]:
            text += f" - {self.detail}"
        super().__init__(" ".join(text.split()))


def classify(exc: BaseException, label: str, network: bool = False) -> StreamError:
    """Map an exception from opening/reading a source to a StreamError (never leaks credentials).

    `network`: the source is a URL; FFmpeg reports a failed name lookup or connect as a plain I/O
    error there, which a person acts on as "unreachable".
    """
    if isinstance(exc, StreamError):
        return exc
    detail = _detail(exc)
    kind: ErrorKind = "io"
    if isinstance(exc, (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)):
        kind = "auth"
    elif isinstance(exc, (av.error.HTTPNotFoundError, FileNotFoundError)):
        kind = "not_found"
    elif isinstance(exc, PermissionError):
        kind = "permission"
    elif isinstance(exc, (av.error.ExitError, TimeoutError)):
        kind, detail = "timeout", None
    elif isinstance(exc, (av.error.DecoderNotFoundError, av.error.DemuxerNotFoundError,
                          av.error.PatchWelcomeError)):
        kind = "unsupported"
    elif isinstance(exc, EOFError):
        kind = "eof"
    elif isinstance(exc, av.error.InvalidDataError):
        kind = "not_video"
    elif isinstance(exc, OSError) and exc.errno in _UNREACHABLE:
        kind = "unreachable"
    elif isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT:
        kind = "timeout"
    elif isinstance(exc, OSError) and "resolve" in str(exc).lower():
        kind = "unreachable"
    if kind == "io" and network and isinstance(exc, OSError) and exc.errno == errno.EIO:
        kind = "unreachable"
    return StreamError(label, kind, detail)


def _detail(exc: BaseException) -> str | None:
    """The human part of an exception, without the file name/URL PyAV appends."""
    strerror = getattr(exc, "strerror", None)
    if strerror:
        return redact_text(str(strerror))
    return redact_text(first_line(exc))
