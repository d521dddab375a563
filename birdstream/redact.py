"""Credential redaction for anything that may reach a log line, a payload or a file."""

from __future__ import annotations

import re

# scheme://userinfo@ — userinfo has no '/', '@' or whitespace; the whole of it is replaced.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")

REDACTED = "***"


def redact_url(text: str) -> str:
    """Replace the ``user:pass@`` part of every URL in *text* with ``***@``."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
