"""Broken and odd media through `birdstream classify` and through the daemon: read right or one clear line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from birdstream.ingest.media import CLIP_SUFFIXES, STILL_SUFFIXES
from tests.faults.test_restarts import payload
from tests.support.cli import run_cli
from tests.support.corpus import Item, make_corpus
from tests.support.daemon import Daemon, sightings_by_id, stream_entry
from tests.support.mosquitto import Mosquitto, Subscriber

pytestmark = pytest.mark.slow  # real daemon processes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Item]:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "card")


def stream_id(item: Item) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", item.name.lower())


def check_item(item: Item, errors: list[str], species: set[str], *, sighting_expected: bool) -> None:
    """The rule for one input: read with the right species, or refused in exactly one line."""
    assert len(errors) <= 1, (item.name, errors)
    if item.expect == "read":
        assert not errors, (item.name, errors)
    if item.expect == "fail":
        assert len(errors) == 1, (item.name, errors)
    if errors:
        assert not species, (item.name, species)
        return
    if item.species is None:
        assert not species, (item.name, species)
    elif sighting_expected:
        assert species == {item.species}, (item.name, species)
    else:
        assert species <= {item.species}, (item.name, species)


@pytest.mark.parametrize("as_folder", [False, True], ids=["files", "card-folder"])
def test_classify_reads_each_input_or_names_it_in_one_line(corpus: list[Item], planted: Path,
                                                           as_folder: bool) -> None:
    args = [str(corpus[0].path.parent)] if as_folder else [str(item.path) for item in corpus]
    result = run_cli("classify", "--model", str(planted), "-q", *args, timeout=300)
    assert "Traceback" not in result.stderr
    assert result.returncode == (1 if any(i.expect == "fail" for i in corpus) else 0), result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    by_stream = sightings_by_id(json.loads(line) for line in result.stdout.splitlines())
    for line in lines:  # every line on stderr is about exactly one input
        assert sum(item.name in line for item in corpus) == 1, line
    for item in corpus:
        errors = [line for line in lines if item.name in line and "error" in line]
        species = {evs[0]["species"] for evs in by_stream.values() if evs[0]["stream"] == item.name}
        if as_folder and item.path.suffix.lower() not in CLIP_SUFFIXES | STILL_SUFFIXES:
            assert not errors and not species, item  # not camera media: a card's other files are left alone
            continue
        check_item(item, errors, species, sighting_expected=True)
    for evs in by_stream.values():
        assert [e["event"] for e in evs][0] == "start" and evs[-1]["event"] == "end"


def test_the_daemon_reads_each_input_or_fails_that_stream_alone(
        corpus: list[Item], daemons: Callable[..., Daemon], broker: Mosquitto, tmp_path: Path) -> None:
    from tests.faults.conftest import BIRD, RED
    from tests.support.video import Box, make_video

    healthy = make_video(tmp_path / "healthy.mp4", duration_s=6, fps=10, objects=[Box(RED, BIRD, 1.0, 3.5)])
    streams = [stream_entry(stream_id(item), item.path) for item in corpus]
    streams.append(stream_entry("card", corpus[0].path.parent))  # the same files as a camera-trap folder
    streams.append(stream_entry("healthy", healthy, realtime=True, loop=True, sample_fps=4))
    with Subscriber(broker.port, ["birdstream/test/#"]) as sub:
        daemon = daemons(streams, mqtt_port=broker.port)
        with daemon.start():
            final: dict[str, dict] = {}
            for item in corpus:
                final[item.name] = payload(sub.wait_for(
                    lambda m, s=stream_id(item): m.topic == f"birdstream/test/{s}/status"
                    and payload(m)["state"] in ("stopped", "failed"), timeout=120)[-1])
            card = payload(sub.wait_for(lambda m: m.topic == "birdstream/test/card/status"
                                        and payload(m)["state"] in ("stopped", "failed"), timeout=120)[-1])
            # The healthy stream still delivers whole sightings after every broken one is done.
            ended = lambda m: m.topic == "birdstream/test/healthy/sighting" and payload(m)["event"] == "end"  # noqa: E731
            before = len([m for m in sub.messages if ended(m)])
            sub.wait_for(ended, timeout=60, count=before + 1)
            assert daemon.terminate() == 0
    log = daemon.log_text()
    assert "Traceback" not in log
    by_id = sightings_by_id(daemon.events())
    for item in corpus:
        status = final[item.name]
        errors = [status["error"]] if status["state"] == "failed" else []
        if errors:
            assert item.name in errors[0] and "\n" not in errors[0], errors
            error_lines = [line for line in log.splitlines() if " ERROR " in line and item.name in line]
            assert len(error_lines) == 1, error_lines
        species = {evs[0]["species"] for evs in by_id.values() if evs[0]["stream"] == stream_id(item)}
        # A lone picture is a one-frame clip to the daemon: too short for a sighting of a video stream.
        check_item(item, errors, species, sighting_expected=not item.still)
    # The folder: read to its end past every broken file (each named once), every clip's bird found.
    assert card["state"] == "stopped", card
    for item in corpus:
        named = sum(f"stream card: {item.path}" in line for line in log.splitlines())
        if item.expect == "fail" and item.path.suffix.lower() in CLIP_SUFFIXES | STILL_SUFFIXES:
            assert named == 1, item.name
        if item.expect == "read":
            assert named == 0, item.name
    found = {evs[0]["species"] for evs in by_id.values() if evs[0]["stream"] == "card"}
    clips = {item.species for item in corpus if item.expect == "read" and not item.still and item.species}
    assert clips <= found <= {item.species for item in corpus if item.species}, found
