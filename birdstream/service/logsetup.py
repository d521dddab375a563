"""Logging setup for the CLI: one line per record, journald-friendly, credentials redacted."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from birdstream.redact import printable, redact_text

# sd-daemon(3) priority prefixes: journald strips them and files the line at that priority.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class RedactingFilter(logging.Filter):
    """Removes ``user:pass@`` from every URL in a record's message (args merged first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class LineFormatter(logging.Formatter):
    """One physical line per record; under journald no timestamp, a <priority> prefix instead."""

    def __init__(self, journal: bool) -> None:
        fmt = "%(name)s: %(message)s" if journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        super().__init__(fmt)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_text
        text = redact_text(super().format(record))
        record.exc_text = saved
        text = printable(text)  # one physical line; a file name cannot forge lines or send escapes
        if self.journal:
            level = record.levelno - record.levelno % 10 if record.levelno < 50 else 50
            return f"<{_PRIORITY.get(level, 6)}>{text}"
        return text


def stderr_is_journal(stream: TextIO = sys.stderr) -> bool:
    """True when stderr is connected to journald ($JOURNAL_STREAM names its device and inode)."""
    value = os.environ.get("JOURNAL_STREAM")
    if not value:
        return False
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return True  # the variable says journald; trust it when the stream cannot be checked
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(level: str | int = "INFO", *, stream: TextIO | None = None,
                  journal: bool | None = None) -> logging.Handler:
    """Configure the root logger with one redacting handler on stderr; returns the handler."""
    stream = sys.stderr if stream is None else stream
    journal = stderr_is_journal(stream) if journal is None else journal
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LineFormatter(journal))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_birdstream", False):
            root.removeHandler(old)
    handler._birdstream = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    set_level(level)
    return handler


def set_level(level: str | int) -> None:
    """Change the root level (config reload)."""
    logging.getLogger().setLevel(level.upper() if isinstance(level, str) else level)
