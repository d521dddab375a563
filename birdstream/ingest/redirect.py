"""RTSP redirects and credentials: FFmpeg follows an RTSP 301/302 to any host and sends the camera's
user and password there. Before FFmpeg connects with credentials, ask the camera once without them
(OPTIONS, FFmpeg's own first request); a redirect to another host is refused with one line."""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit, urlunsplit

from birdstream.ingest.errors import StreamError
from birdstream.ingest.spec import SourceSpec

MAX_HEAD = 16_384


def check_rtsp_redirect(spec: SourceSpec, label: str) -> None:
    """Raise StreamError when an rtsp(s) source with credentials redirects to another host.

    A camera that cannot be reached here is left for FFmpeg to report (its error names the cause).
    """
    parts = urlsplit(spec.url)
    scheme = parts.scheme.lower()
    if scheme not in ("rtsp", "rtsps") or not (parts.username or parts.password) or not parts.hostname:
        return
    host = parts.hostname
    port = parts.port or (322 if scheme == "rtsps" else 554)
    netloc = parts.netloc.rsplit("@", 1)[1]
    clean = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    try:
        head = _options(host, port, clean, spec)
    except (OSError, ValueError):
        return
    lines = head.split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[1] not in ("301", "302", "303", "305", "307"):
        return
    location = next((line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith("location:")), "")
    target = urlsplit(location)
    if target.hostname and (target.hostname.lower() != host.lower() or (target.port or port) != port):
        where = f"{target.hostname}:{target.port}" if target.port else target.hostname
        raise StreamError(label, "auth", f"the camera redirects to another host ({where}); not followed, "
                                         "so the password is not sent there")


def _options(host: str, port: int, url: str, spec: SourceSpec) -> str:
    request = f"OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: birdstream\r\n\r\n".encode()
    with socket.create_connection((host, port), timeout=spec.open_timeout_s) as raw:
        raw.settimeout(spec.read_timeout_s)
        conn: socket.socket = raw
        if url.startswith("rtsps"):
            context = ssl.create_default_context(cafile=spec.ca_file)
            if not spec.tls_verify:
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            conn = context.wrap_socket(raw, server_hostname=host)
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
