"""The daemon's own engine health check against a real Engine whose classifier hangs (a wedged GPU
or driver): unhealthy while the batch hangs, healthy again once it returns."""

from __future__ import annotations

import json
from pathlib import Path

from birdstream.engine import Engine
from birdstream.service.daemon import engine_check
from birdstream.service.supervisor import Supervisor
from tests.engine.conftest import Collector, GatedClassifier, make_frame
from tests.support.daemon import wait_until

STALE_S = 0.05


def _unhealthy(sup: Supervisor):
    snap = sup.tick()
    return None if snap.healthy else snap


def test_a_hanging_classifier_makes_the_daemon_unhealthy(tmp_path: Path) -> None:
    clf = GatedClassifier()
    collector = Collector()
    engine = Engine(clf, max_batch=4, max_wait_ms=5, idle_tick_s=0.01, on_predictions=collector)
    health_file = tmp_path / "health.json"
    sup = Supervisor(health_file=health_file, stale_s=60.0, tick_s=0.05)
    sup.add_check("engine", engine_check(engine, STALE_S))
    engine.start()
    try:
        assert sup.tick().healthy  # idle: the loop turns, its heartbeat stays fresh
        clf.shut()
        engine.mailbox("cam").put(make_frame("cam", 0))
        assert clf.entered.wait(5)
        snap = wait_until(lambda: _unhealthy(sup), 10, "unhealthy while hung")
        assert any("engine: one batch has been running for" in r for r in snap.reasons), snap.reasons
        on_disk = json.loads(health_file.read_text())
        assert on_disk["healthy"] is False and "engine" in on_disk["status"]
        clf.open()
        assert collector.wait_for(1)
        wait_until(lambda: sup.tick().healthy, 10, "healthy once the batch returned")
    finally:
        clf.open()
        engine.stop()
        assert engine.join(10)


def test_an_engine_whose_loop_stops_turning_is_unhealthy() -> None:
    clf = GatedClassifier()
    engine = Engine(clf, max_batch=4, max_wait_ms=5, idle_tick_s=0.01, on_predictions=Collector())
    check = engine_check(engine, STALE_S)
    engine.start()
    engine.stop()
    assert engine.join(10)
    reason = wait_until(check, 10, "stale heartbeat")  # a thread that exited beats no more
    assert reason.startswith("engine: no heartbeat for")
