"""`birdstream run`: start the stages in order, supervise them, stop them in reverse order.

config -> model load and warm-up -> outbox and sinks -> engine -> streams -> READY=1.
SIGTERM/SIGINT: STOPPING=1 -> stop ingest -> engine finishes its batch -> open sightings end ->
sinks flush (outbox drains for service.shutdown_grace_s) -> `offline` -> exit 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

from birdstream.config import Config
from birdstream.service.http import start_http
from birdstream.service.reload import ConfigDiff, make_reloader
from birdstream.service.supervisor import Supervisor

log = logging.getLogger(__name__)


def run_daemon(config: Config, config_path: Path | None = None, *, supervisor: Supervisor | None = None) -> int:
    """Run every configured stream until SIGTERM/SIGINT; returns the process exit code."""
    sup = supervisor or Supervisor.from_config(config)
    sup.install_signal_handlers()
    try:
        return _run(config, config_path, sup)
    finally:
        sup.restore_signal_handlers()


def engine_check(engine, stale_s: float):
    """Healthy while the inference loop turns; one long classifier call (a big CPU batch) gets 5x longer."""
    import time

    def check() -> str | None:
        now = time.monotonic()
        busy = engine.busy_since
        if busy is not None:
            age = now - busy
            return f"engine: one batch has been running for {age:.0f} s" if age > 5 * stale_s else None
        age = now - engine.heartbeat
        return f"engine: no heartbeat for {age:.0f} s" if age > stale_s else None

    return check


def _end_unfinished(config: Config, publisher) -> None:
    """Publish the ends that a killed previous run owes (its open sightings), before new events."""
    from birdstream.publish.jsonl import FILE_NAME
    from birdstream.publish.recovery import closing_events

    events = closing_events(Path(config.state_dir) / FILE_NAME, config.station)
    for event in events:
        publisher.publish(event)
    if events:
        log.warning("the previous run did not stop cleanly: ended %d sighting(s) it left open", len(events))
    configured = {stream.id for stream in config.enabled_streams}
    for stream in sorted({event.stream for event in events} - configured):
        publisher.forget_stream(stream)  # its end is out; a stream no longer configured leaves no topics


def _run(config: Config, config_path: Path | None, sup: Supervisor) -> int:
    from birdstream.engine.classifier import Classifier
    from birdstream.model.speed import SpeedOptions, configure_threads
    from birdstream.station.live import LivePipeline
    from birdstream.station import wiring

    configure_threads(config.model.threads)
    sup.set_status(f"loading model {config.model.weights}")
    classifier = Classifier.load(config.model.weights, config.model.device, config.model.precision,
                                 config.model.cache_dir, speed=SpeedOptions.from_config(config.model),
                                 max_batch=config.model.max_batch)
    sup.set_status("warming up the model")
    classifier.warm_up(min(config.model.max_batch, 8))
    if sup.stopping:
        return 0

    # The HTTP port first: a port in use is an error before any stream or sink is running.
    http = start_http(config.http, sup.snapshot)
    publisher = wiring.publisher(config)
    try:
        publisher.start()
    except BaseException:
        if http is not None:
            http.close()
        raise
    _end_unfinished(config, publisher)
    pipeline = LivePipeline(config, classifier, publisher)
    try:
        pipeline.start()
    except BaseException:
        pipeline.stop()
        publisher.close(0)
        if http is not None:
            http.close()
        raise

    engine = pipeline.engine
    sup.add_check("engine", engine_check(engine, config.service.watchdog_stale_s))
    sup.add_fatal_check("engine", lambda: f"engine failed: {engine.error}" if engine.error else None)
    sup.add_fatal_check("track", lambda: f"tracker thread failed: {pipeline.tracking.error}"
                        if pipeline.tracking.error else None)
    sup.watch_streams(pipeline.statuses)
    state = {"config": config}

    def apply(new: Config, diff: ConfigDiff) -> None:
        if diff.restart_needed:
            log.warning("reload: %s changed; restart the service to apply it", ", ".join(diff.restart_needed))
        pipeline.apply(new, added=diff.added, removed=diff.removed, changed=diff.changed)
        for stream_id in diff.removed:
            publisher.forget_stream(stream_id)  # after its open sighting ended: clears its retained topics
        state["config"] = new

    if config_path is not None:
        sup.on_reload(make_reloader(Path(config_path), lambda: state["config"], apply))

    def shutdown() -> None:
        sup.set_status("stopping: ending open sightings")
        try:
            pipeline.stop()
        finally:
            left = publisher.close(state["config"].service.shutdown_grace_s)
            if left:
                log.info("%d message(s) stay in the outbox for the next start", left)
            if http is not None:
                http.close()

    log.info("running %d stream(s) on station %s", len(pipeline.stream_ids()), config.station)
    return sup.run(shutdown)
