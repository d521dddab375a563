"""Notifications end to end: the real daemon, Apprise's json:// scheme to a real local HTTP endpoint."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

from tests.e2e.conftest import BLUE, RED
from tests.e2e.test_classify import BIRD
from tests.support.cli import run_cli
from tests.support.daemon import Daemon, stream_entry, wait_until
from tests.support.mosquitto import Subscriber
from tests.support.video import Box, make_video
from tests.support.webhook import Webhook

MORNING = datetime(2026, 5, 10, 7, 0, 0, tzinfo=timezone.utc)
SECRET = "s3cretPassw0rd"


def _visits(tmp_path: Path) -> Path:
    """Scarlet Tanager twice (8 s apart), then Indian Roller: three sightings at about 07:00 UTC."""
    return make_video(tmp_path / "visits.mp4", duration_s=21, fps=10, creation_time=MORNING, objects=[
        Box(RED, BIRD, 1.0, 4.0), Box(RED, BIRD, 9.0, 12.0), Box(BLUE, BIRD, 14.0, 19.0)])


def _starts(d: Daemon) -> list[dict]:
    return [e for e in d.events() if e["event"] == "start"]


def test_notifications_arrive_once_per_start_with_the_snapshot_and_respect_cooldown_and_quiet_hours(
        tmp_path: Path, planted: Path) -> None:
    video = _visits(tmp_path)
    with Webhook() as hook:
        notify = [
            {"url": hook.url("/every", f"birder:{SECRET}"), "when": ["start"], "cooldown_s": 0},
            {"url": hook.url("/cooled"), "when": ["start"], "cooldown_s": 60, "attach_snapshot": False},
            {"url": hook.url("/quiet"), "when": ["start"], "cooldown_s": 0, "quiet_hours": "06:30-07:30"},
            {"url": hook.url("/new"), "when": ["new_species"], "cooldown_s": 0},
            {"url": hook.url("/daily"), "when": ["first_of_day"], "cooldown_s": 0},
            {"url": hook.url("/rare"), "when": ["rare"], "cooldown_s": 0},
        ]
        # The roller is uncommon here in May (weight 0.5, below rare_below 0.6): still sighted on a
        # 5 s visit, and announced as rare.
        months = ["1"] * 12
        months[4] = "0.5"
        (tmp_path / "priors.csv").write_text("species,jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec\n"
                                             "Indian Roller," + ",".join(months) + "\n")
        extra = {"timezone": "UTC", "notify": notify,
                 "sightings": {"priors": str(tmp_path / "priors.csv"), "rare_below": 0.6}}
        with Daemon(tmp_path / "d", planted, [stream_entry("cam", video)], extra=extra) as d:
            d.start()
            d.wait_events(lambda evs: sum(e["event"] == "end" for e in evs) >= 3, timeout=120)
            wait_until(lambda: len(hook.requests) >= 3 + 2 + 2 + 2 + 1, timeout=60, what="notifications")
            assert d.terminate() == 0
        by_path: dict[str, list[dict]] = {}
        for request in hook.requests:
            by_path.setdefault(request["path"], []).append(request)
    starts = _starts(d)
    assert [s["species"] for s in starts] == ["Scarlet Tanager", "Scarlet Tanager", "Indian Roller"]
    every = by_path["/every"]
    assert [r["body"]["title"] for r in every] == [f"{s['species']} at test" for s in starts]
    for request, start in zip(every, starts):
        body = request["body"]["message"]
        assert start["species"] in body and "cam" in body and "2026-05-10 07:00" in body
        (attachment,) = request["body"]["attachments"]
        assert attachment["mimetype"] == "image/jpeg"
        assert base64.b64decode(attachment["base64"])[:2] == b"\xff\xd8"
        assert request["auth"] == "Basic " + base64.b64encode(f"birder:{SECRET}".encode()).decode()
    # cooldown 60 s: the second tanager visit (8 s later) is not announced again; the roller is.
    cooled = by_path["/cooled"]
    assert [r["body"]["title"] for r in cooled] == ["Scarlet Tanager at test", "Indian Roller at test"]
    assert all(r["body"]["attachments"] == [] for r in cooled)
    assert "/quiet" not in by_path  # every start fell in the quiet hours
    new = by_path["/new"]
    assert [r["body"]["title"] for r in new] == ["Scarlet Tanager at test", "Indian Roller at test"]
    assert "first ever at this station" in new[0]["body"]["message"]
    daily = by_path["/daily"]
    assert [r["body"]["title"] for r in daily] == ["Scarlet Tanager at test", "Indian Roller at test"]
    (rare,) = by_path["/rare"]
    assert rare["body"]["title"] == "Indian Roller at test" and "rare here this month (prior 0.5)" in rare["body"]["message"]
    assert [s["prior"] for s in starts] == [1.0, 1.0, 0.5]
    # The secret was used (basic auth above) but is nowhere in a log or a file.
    assert SECRET not in d.log_text(all_runs=True)
    for path in d.state_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    shown = run_cli("check-config", "-c", str(d.config_path), timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert SECRET not in shown.stdout + shown.stderr and "notify:" in shown.stdout


def test_a_failing_or_hanging_target_changes_nothing_else(tmp_path: Path, planted: Path, broker) -> None:
    video = _visits(tmp_path)
    with Webhook("fail") as failing, Webhook("hang") as hanging, \
            Subscriber(broker.port, ["birdstream/test/cam/sighting"]) as sub:
        # A token in the URL's path (as Telegram's or Discord's): DEBUG logging shows request lines.
        notify = [{"url": failing.url(f"/f/{SECRET}"), "when": ["start"], "cooldown_s": 0},
                  {"url": hanging.url("/h"), "when": ["start"], "cooldown_s": 0}]
        with Daemon(tmp_path / "d", planted, [stream_entry("cam", video)], mqtt_port=broker.port,
                    extra={"notify": notify, "log_level": "DEBUG"}) as d:
            d.start()
            # Every sighting ends and reaches the broker, whatever the targets do.
            sub.wait_until(lambda msgs: sum(json.loads(m.payload)["event"] == "end" for m in msgs) >= 3,
                           timeout=120)
            wait_until(lambda: len(failing.requests) >= 2, timeout=60, what="a retry of the failing target")
            d.wait_log("notify[0] (json://***): sending failed (attempt 1 of 4)", timeout=30)
            # One worker sends in order: after the failing target's retries, the hanging one is tried.
            wait_until(lambda: hanging.requests, timeout=90, what="the hanging target is tried")
            # Shutdown does not wait for the hanging request.
            assert d.terminate(timeout=60) == 0
    events = d.events()
    assert [e["species"] for e in events if e["event"] == "start"] == [
        "Scarlet Tanager", "Scarlet Tanager", "Indian Roller"]
    published = [json.loads(m.payload) for m in sub.messages]
    assert {(e["id"], e["seq"]) for e in published} == {(e["id"], e["seq"]) for e in events}
    log_text = d.log_text(all_runs=True)
    assert f"127.0.0.1:{failing.port}" not in log_text and SECRET not in log_text
    assert failing.requests[0]["path"] == f"/f/{SECRET}"
    for path in d.state_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
