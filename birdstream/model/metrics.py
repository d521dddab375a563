"""Prometheus metrics of the model area (defined once, at import)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DOWNLOADS = Counter(
    "birdstream_model_downloads_total",
    "Weights downloads by result (ok, http_error, connect_error, interrupted, sha256_mismatch)",
    ["result"],
)
CHECKPOINT_LOAD_FAILURES = Counter(
    "birdstream_checkpoint_load_failures_total",
    "Weights files refused by the loader (missing, unreadable, unsafe, incompatible)",
)
LOAD_SECONDS = Histogram(
    "birdstream_model_load_seconds",
    "Time to read, build and place the model on its device",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
