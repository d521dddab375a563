"""`birdstream export camtrap-dp` from a real daemon run's sightings store: reviews honoured, schemas valid."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import BLUE, RED
from tests.support.camtrap import validation_errors
from tests.support.cli import run_cli
from tests.support.daemon import Daemon, stream_entry, wait_until
from tests.support.mosquitto import free_port
from tests.support.video import Box, make_video
from tests.web.conftest import get_json, http

BIRD = (110, 70, 100, 90)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_export_from_the_store_of_a_daemon_run_honours_reviews(tmp_path: Path, planted: Path) -> None:
    videos = {name: make_video(tmp_path / f"{name}.mp4", duration_s=6, fps=10,
                               objects=[Box(colour, BIRD, 1.0, 4.5)])
              for name, colour in (("red", RED), ("blue", BLUE), ("wrong", RED))}
    taxonomy = tmp_path / "taxa.csv"
    taxonomy.write_text("common_name,scientific_name,rank,source,source_version,licence\n"
                        "Scarlet Tanager,Piranga olivacea,species,test list,1,CC0-1.0\n", encoding="utf-8")
    port = free_port()
    daemon = Daemon(tmp_path / "d", planted, [stream_entry(n, v, sample_fps=4) for n, v in videos.items()],
                    extra={"http": {"enabled": True, "port": port}, "taxonomy": str(taxonomy),
                           "deployment": {"latitude": 23.6, "longitude": 58.5, "camera_model": "Pi HQ",
                                          "streams": {"blue": {"latitude": 23.7, "camera_height_m": 1.5}}}})
    base = f"http://127.0.0.1:{port}"
    with daemon.start():
        ended = lambda: {e["stream"]: e["id"] for e in daemon.events() if e["event"] == "end"}  # noqa: E731
        ids = wait_until(lambda: len(ended()) == 3 and ended(), 180, "a sighting ended on each stream")
        wait_until(lambda: all(get_json(f"{base}/api/sightings/{i}")[1].get("ended_at") for i in ids.values()),
                   30, "the ended sightings in the store")
        assert http(f"{base}/api/sightings/{ids['wrong']}/review", {"verdict": "false"})[0] == 200
        assert http(f"{base}/api/sightings/{ids['blue']}/review",
                    {"verdict": "relabel", "species": "Green Bee-eater"})[0] == 200
        assert daemon.terminate() == 0
    out = tmp_path / "package"
    result = run_cli("export", "camtrap-dp", "-c", str(daemon.config_path), "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    assert validation_errors(out) == []
    observations = {o["eventID"]: o for o in rows(out / "observations.csv")}
    assert sorted(observations) == sorted([ids["red"], ids["blue"]])  # reviewed false: left out
    assert observations[ids["red"]]["scientificName"] == "Piranga olivacea"
    assert observations[ids["blue"]]["scientificName"] == ""  # no scientific name known: vernacular only
    assert observations[ids["blue"]]["observationTags"] == "vernacularName:Green Bee-eater"
    assert result.stderr.count("'Green Bee-eater'") == 1  # reported once
    descriptor = json.loads((out / "datapackage.json").read_text())
    assert descriptor["taxonomic"] == [{"scientificName": "Piranga olivacea", "taxonRank": "species",
                                        "vernacularNames": {"eng": "Scarlet Tanager"}}]
    deployments = {d["deploymentID"]: d for d in rows(out / "deployments.csv")}
    assert sorted(deployments) == ["blue", "red"]
    assert (deployments["blue"]["latitude"], deployments["blue"]["longitude"],
            deployments["blue"]["cameraHeight"], deployments["blue"]["cameraModel"]) == ("23.7", "58.5", "1.5", "Pi HQ")
    media = rows(out / "media.csv")  # live streams: the snapshots
    assert sorted(m["deploymentID"] for m in media) == ["blue", "red"]
    assert all(m["fileMediatype"] == "image/jpeg" and m["filePath"].startswith("file:///") for m in media)
    since = run_cli("export", "camtrap-dp", "-c", str(daemon.config_path), "--out", str(tmp_path / "none"),
                    "--since", "2999-01-01T00:00:00Z", timeout=120)
    assert since.returncode == 0, since.stderr
    assert rows(tmp_path / "none" / "observations.csv") == [] and validation_errors(tmp_path / "none") == []
    # Bad inputs: one line naming the thing, usage error, no traceback.
    config = yaml.safe_load(daemon.config_path.read_text())
    del config["deployment"]["latitude"]
    (tmp_path / "nolat.yaml").write_text(yaml.safe_dump(config))
    bad = run_cli("export", "camtrap-dp", "-c", str(tmp_path / "nolat.yaml"), "--out", str(tmp_path / "x"), timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "birdstream: error: deployment.latitude: needed for the Camtrap DP deployment of camera 'red' "
        "(set it in the config, or --lat/--lon for classify)"]
    taxonomy.write_text("name,latin\nScarlet Tanager,Piranga olivacea\n", encoding="utf-8")
    bad = run_cli("export", "camtrap-dp", "-c", str(daemon.config_path), "--out", str(tmp_path / "x"), timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"birdstream: error: {taxonomy}: taxonomy needs the columns common_name and scientific_name "
        "(missing: common_name, scientific_name)"]
