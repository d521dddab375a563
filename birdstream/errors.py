"""Errors a user can cause: each carries one line that names the file, URL, key or thing at fault.

The CLI prints ``str(err)`` of a BirdstreamError on one line and never a traceback.
"""

from __future__ import annotations


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (at most ``limit`` characters), else its type name."""
    text = str(err).strip().splitlines()
    return text[0][:limit] if text else type(err).__name__


class BirdstreamError(Exception):
    """A user-actionable error; its message is one line naming the thing at fault."""


class ConfigError(BirdstreamError):
    """Invalid or unreadable configuration."""


class CheckpointError(BirdstreamError):
    """A weights file that is missing, unreadable, unsafe or not a compatible Birder checkpoint."""


class DownloadError(BirdstreamError):
    """Published weights could not be fetched or failed verification."""


class SourceError(BirdstreamError):
    """A camera or file source that cannot be opened or read."""


class PublishError(BirdstreamError):
    """A sink (broker, state directory) that cannot be used."""
