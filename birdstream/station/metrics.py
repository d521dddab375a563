"""Per-stream metric series of a stream that is gone: removed from every stage's metrics.

A stream removed by a reload would otherwise keep exporting its last values for the daemon's life
(a dashboard shows a camera that no longer exists; a renamed stream leaves its old series behind).
"""

from __future__ import annotations

import logging
from types import ModuleType

from prometheus_client.metrics import MetricWrapperBase

from birdstream.engine import metrics as engine_metrics
from birdstream.ingest import metrics as ingest_metrics
from birdstream.publish import metrics as publish_metrics
from birdstream.track import metrics as track_metrics

log = logging.getLogger(__name__)

_MODULES: tuple[ModuleType, ...] = (ingest_metrics, engine_metrics, track_metrics, publish_metrics)


def forget_stream_metrics(stream_id: str) -> int:
    """Remove every series labelled ``stream=stream_id``; returns how many metrics had some.

    The label sets are read from ``_labelnames`` / ``_metrics``, stable across prometheus_client
    releases (its public ``remove_by_labels`` is recent; the floor in pyproject.toml predates it)."""
    touched = 0
    for module in _MODULES:
        for metric in vars(module).values():
            if not isinstance(metric, MetricWrapperBase) or "stream" not in metric._labelnames:
                continue
            at = metric._labelnames.index("stream")
            gone = [values for values in list(metric._metrics) if values[at] == stream_id]
            for values in gone:
                metric.remove(*values)
            touched += bool(gone)
    log.debug("stream %s: cleared its series from %d metric(s)", stream_id, touched)
    return touched
