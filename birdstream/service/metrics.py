"""Prometheus metrics of the service layer (defined once, default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

HEALTHY = Gauge("birdstream_healthy", "1 while every health check passes, else 0")
WATCHDOG_PINGS = Counter("birdstream_watchdog_pings_total", "WATCHDOG=1 pings sent to systemd")
HEALTH_FAILURES = Counter("birdstream_health_check_failures_total",
                          "Health ticks on which a check failed", ["check"])
RELOADS = Counter("birdstream_reloads_total", "Configuration reloads (SIGHUP)", ["result"])
WORKER_CRASHES = Counter("birdstream_worker_crashes_total", "Worker threads that died with an exception")
HEALTH_FILE_ERRORS = Counter("birdstream_health_file_errors_total", "Failed writes of the health status file")
