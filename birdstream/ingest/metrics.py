"""Prometheus metrics of ingest, labelled by stream (defined once, here)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from birdstream.messages import STREAM_STATES

FRAMES_DECODED = Counter("birdstream_ingest_frames_decoded_total", "Pictures decoded", ["stream"])
FRAMES_SAMPLED = Counter("birdstream_ingest_frames_sampled_total",
                         "Pictures picked by the sampler (converted to the model input)", ["stream"])
FRAMES_EMITTED = Counter("birdstream_ingest_frames_emitted_total", "Frames handed to the engine", ["stream"])
FRAMES_GATED = Counter("birdstream_ingest_frames_gated_total",
                       "Sampled frames held back by the motion gate", ["stream"])
PACKETS_DROPPED = Counter("birdstream_ingest_packets_dropped_total",
                          "Corrupt packets skipped by the decoder", ["stream"])
RECONNECTS = Counter("birdstream_ingest_reconnects_total", "Reopen attempts after a failure", ["stream"])
ERRORS = Counter("birdstream_ingest_errors_total", "Source errors by kind", ["stream", "kind"])
REGIONS = Counter("birdstream_ingest_regions_total",
                  "Region crops sent beside the whole frame (at most regions.max_regions a frame)", ["stream"])
REGION_RECALIBRATIONS = Counter("birdstream_ingest_region_recalibrations_total",
                                "Motion over most of the picture (lights, shake): background started again",
                                ["stream"])
HWACCEL_FALLBACKS = Counter("birdstream_ingest_hwaccel_fallbacks_total",
                            "Hardware decoding given up for software decoding, by reason", ["stream", "reason"])
HWACCEL_ACTIVE = Gauge("birdstream_ingest_hwaccel_active", "1 while the stream decodes on a hardware device",
                       ["stream"])
STATE = Gauge("birdstream_ingest_state", "1 for the stream's current state", ["stream", "state"])

_FIELDS = {"frames_in": FRAMES_DECODED, "sampled": FRAMES_SAMPLED, "emitted": FRAMES_EMITTED,
           "gated": FRAMES_GATED, "dropped": PACKETS_DROPPED, "regions": REGIONS,
           "recalibrations": REGION_RECALIBRATIONS}


class StreamMetrics:
    """The labelled children of one stream, and the counter values already reported."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.reconnects = RECONNECTS.labels(stream)
        self._children = {name: metric.labels(stream) for name, metric in _FIELDS.items()}
        self._reported = dict.fromkeys(_FIELDS, 0)

    def errors(self, kind: str) -> Counter:
        return ERRORS.labels(self.stream, kind)

    def sync(self, counters: dict[str, int]) -> None:
        """Add what the reader counted since the last sync (cheap enough to call about once a second)."""
        for name, child in self._children.items():
            delta = counters.get(name, 0) - self._reported[name]
            if delta > 0:
                child.inc(delta)
                self._reported[name] += delta

    def set_state(self, state: str) -> None:
        for s in STREAM_STATES:
            STATE.labels(self.stream, s).set(1.0 if s == state else 0.0)


def for_stream(stream: str) -> StreamMetrics:
    return StreamMetrics(stream)
