"""Prometheus metrics of the inference engine, defined once for the process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DROPPED_FRAMES = Counter(
    "birdstream_engine_dropped_frames_total",
    "Frames dropped before classification, by stream and reason "
    "(overflow: a newer frame replaced it; stale: older than max_age_s; "
    "invalid: wrong shape; removed/shutdown: pending when the stream or engine stopped; "
    "oom: could not be classified even one at a time).",
    ["stream", "reason"],
)
FRAMES_CLASSIFIED = Counter(
    "birdstream_engine_frames_classified_total",
    "Frames classified, by stream.",
    ["stream"],
)
QUEUE_DEPTH = Gauge(
    "birdstream_engine_queue_depth",
    "Frames waiting in a stream's mailbox.",
    ["stream"],
)
BATCH_SIZE = Histogram(
    "birdstream_engine_batch_size",
    "Frames per classifier call.",
    buckets=(1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128),
)
INFERENCE_SECONDS = Histogram(
    "birdstream_engine_inference_seconds",
    "Wall time of one classifier call (transfer, forward, softmax).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
OOM_TOTAL = Counter(
    "birdstream_engine_oom_total",
    "Out-of-memory errors of the classifier; each one halves the batch cap.",
)
ERRORS_TOTAL = Counter(
    "birdstream_engine_errors_total",
    "Internal errors that stopped the inference thread.",
)
