"""`birdstream run`: start the stages in order, supervise them, stop them in reverse order.

config -> model load and warm-up -> outbox and sinks -> engine -> streams -> READY=1.
SIGTERM/SIGINT: STOPPING=1 -> stop ingest -> engine finishes its batch -> open sightings end ->
sinks flush (outbox drains for service.shutdown_grace_s) -> `offline` -> exit 0.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from birdstream.config import Config
from birdstream.service.http import start_http
from birdstream.service.reload import ConfigDiff, make_reloader
from birdstream.service.statelock import StateLock
from birdstream.service.supervisor import Supervisor

log = logging.getLogger(__name__)


def run_daemon(config: Config, config_path: Path | None = None, *, supervisor: Supervisor | None = None) -> int:
    """Run every configured stream until SIGTERM/SIGINT; returns the process exit code."""
    # Owner-only state files (outbox, log, snapshots, client id) also outside systemd (a shell's or
    # Docker's umask 022 would make them world-readable); under systemd the unit's UMask= rules
    # (INVOCATION_ID is set for every unit it starts). A stricter umask the caller set is kept.
    if "INVOCATION_ID" not in os.environ:
        os.umask(os.umask(0o077) | 0o077)
    lock = StateLock(config.state_dir).acquire()  # StateDirBusy: one line, exit 1, nothing touched
    try:
        sup = supervisor or Supervisor.from_config(config)
        sup.install_signal_handlers()
        try:
            return _run(config, config_path, sup)
        finally:
            sup.restore_signal_handlers()
    finally:
        lock.release()


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
    from birdstream.publish.publisher import OUTBOX_FILE
    from birdstream.publish.recovery import closing_events

    state = Path(config.state_dir)
    outbox = state / OUTBOX_FILE if config.mqtt.enabled else None  # events the log may have lost
    events = closing_events(state / FILE_NAME, config.station, outbox)
    for event in events:
        publisher.publish(event)
    if events:
        log.warning("the previous run did not stop cleanly: ended %d sighting(s) it left open", len(events))
    configured = {stream.id for stream in config.enabled_streams}
    for stream in sorted({event.stream for event in events} - configured):
        publisher.forget_stream(stream)  # its end is out; a stream no longer configured leaves no topics


def _web_site(config: Config, class_names: list[str]):
    """The page's view of the daemon (its store and streams are connected once they run)."""
    from birdstream.web import ReviewPolicy, Site
    from birdstream.web.site import is_loopback

    auth = config.http.auth
    policy = ReviewPolicy(loopback=is_loopback(config.http.host), username=auth.username if auth else None,
                          password=auth.password.get_secret_value() if auth and auth.password else None)
    return Site(state_dir=Path(config.state_dir), station=config.station, reader=None,
                species_names=tuple(class_names), policy=policy)


def _connect_site(site, publisher) -> None:
    from birdstream.publish.store_query import StoreReader

    if publisher.store is not None:
        site.writer = publisher.store
        site.reader = StoreReader(site.state_dir)
    site.publish_review = publisher.publish_review


def _start_outputs(config: Config, sup: Supervisor, class_names: list[str]):
    """The HTTP endpoint (None when off), the page's site (None when off) and the started publisher.

    The HTTP port first: a port in use is an error before any stream or sink is running.
    """
    from birdstream.station import wiring

    site = _web_site(config, class_names) if config.http.enabled else None
    http = start_http(config.http, sup.snapshot, site)
    publisher = wiring.publisher(config)
    try:
        publisher.start()
    except BaseException:
        if http is not None:
            http.close()
        raise
    if site is not None:
        _connect_site(site, publisher)
    return http, site, publisher


def _run(config: Config, config_path: Path | None, sup: Supervisor) -> int:
    from birdstream.station import wiring
    from birdstream.station.live import LivePipeline
    from birdstream.station.metrics import forget_stream_metrics

    sup.set_status(f"loading model {config.model.weights}")
    classifier = wiring.classifier(config)
    sup.set_status("warming up the model")
    classifier.warm_up(min(config.model.max_batch, 8))
    if sup.stopping:
        return 0

    http, site, publisher = _start_outputs(config, sup, classifier.class_names)
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

    if site is not None:
        site.streams = pipeline.statuses
    engine = pipeline.engine
    sup.add_check("engine", engine_check(engine, config.service.watchdog_stale_s))
    sup.add_fatal_check("engine", lambda: f"engine failed: {engine.error}" if engine.error else None)
    sup.add_fatal_check("track", lambda: f"tracker thread failed: {pipeline.tracking.error}"
                        if pipeline.tracking.error else None)
    sup.watch_streams(pipeline.statuses)
    sup.add_notice("outbox", lambda: publisher.outbox_notice)
    state = {"config": config}

    def apply(new: Config, diff: ConfigDiff) -> None:
        if diff.restart_needed:
            log.warning("reload: %s changed; restart the service to apply it", ", ".join(diff.restart_needed))
        pipeline.apply(new, added=diff.added, removed=diff.removed, changed=diff.changed)
        for stream_id in diff.removed:
            publisher.forget_stream(stream_id)  # after its open sighting ended: clears its retained topics
            forget_stream_metrics(stream_id)  # after its last event: nothing re-creates its series
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
