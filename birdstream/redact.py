"""Credential redaction for anything that may reach a log line, a payload or a file."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

# scheme://userinfo@ : userinfo has no '/', '@' or whitespace; the whole of it is replaced.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_SECRET_KEYS = re.compile(r"^(pass(word|wd)?|pwd|token|key|secret|auth|sig(nature)?|access_token)$", re.I)
# user:password@ where the password holds an unencoded / ? or # (so URL parsers see no userinfo):
# a ':' not followed by a port number, then everything up to the URL's last '@'.
_LOOSE_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s\[]*:(?!\d*(?:[/?#]|$))\S*@")
# user:pass word@ : a space in the password ends what URL patterns see; up to the '@' goes.
_SPACED_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\n]*?[ \t][^/@\n]*@")
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """One URL with ``user:password@`` and secret query values (password=, token=, ...) replaced by ***."""
    url = _SPACED_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", url)
    if not parts.scheme or not parts.netloc:
        return url
    loose = _LOOSE_USERINFO.match(url)
    if loose is not None and "@" not in parts.netloc:
        return redact_url(f"{loose.group('scheme')}{REDACTED}@{url[loose.end():]}")
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_KEYS.match(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if _SECRET_KEYS.match(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Free text (a log record, an FFmpeg message) with every URL in it redacted."""
    if "://" not in text:
        return text
    text = _SPACED_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    text = _URL_IN_TEXT.sub(_redact_match, text)
    # A URL the pattern above cut short (e.g. a quote inside the password) still loses its userinfo.
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)


def _redact_match(m: re.Match[str]) -> str:
    # Punctuation that closes the sentence around a URL ("stream x (URL): ...") is not part of it:
    # a secret query value would otherwise swallow it.
    url = m.group(0)
    core = url.rstrip(")].,;:")
    return redact_url(core) + url[len(core):]


_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text with control characters escaped (\\n, \\x1b, ...): a file name cannot forge a log line
    or send terminal escapes."""
    return _CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
