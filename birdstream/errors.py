"""Errors a user can cause: each carries one line that names the file, URL, key or thing at fault.

The CLI prints ``str(err)`` of a BirdstreamError on one line and never a traceback.
"""

from __future__ import annotations


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
