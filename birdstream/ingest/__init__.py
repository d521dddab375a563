"""Ingest: one reader thread per stream (PyAV) producing sampled, model-size Frames."""

from birdstream.ingest.errors import StreamError
from birdstream.ingest.media import list_media
from birdstream.ingest.files import iter_frames
from birdstream.ingest.reader import StreamReader
from birdstream.ingest.spec import SourceSpec, source_kind
from birdstream.redact import redact_text, redact_url

__all__ = ["SourceSpec", "StreamError", "StreamReader", "iter_frames", "list_media", "redact_text",
           "redact_url", "source_kind"]
