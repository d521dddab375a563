"""`birdstream export camtrap-dp` from a real daemon run's sightings store: reviews honoured, schemas valid."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

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
                    extra={"http": {"enabled": True, "port": port}, "taxonomy": str(taxonomy), "timezone": "Asia/Muscat",
                           "deployment": {"latitude": 23.6, "longitude": 58.5, "camera_model": "Pi HQ",
                                          "location_name": "Wadi garden", "country_code": "OM",
                                          "streams": {"blue": {"latitude": 23.7, "camera_height_m": 1.5,
                                                               "active_from": "2024-05-01T06:00:00+04:00"}}}})
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
    assert deployments["blue"]["deploymentStart"] == "2024-05-01T02:00:00Z"  # the configured set-up time
    # Without one, the period is the data's: from its first sighting to its last.
    assert (deployments["red"]["deploymentStart"], deployments["red"]["deploymentEnd"]) == (
        observations[ids["red"]]["eventStart"], observations[ids["red"]]["eventEnd"])
    media = rows(out / "media.csv")  # live streams: the snapshots
    assert sorted(m["deploymentID"] for m in media) == ["blue", "red"]
    assert all(m["fileMediatype"] == "image/jpeg" and m["filePath"].startswith("file:///") for m in media)
    since = run_cli("export", "camtrap-dp", "-c", str(daemon.config_path), "--out", str(tmp_path / "none"),
                    "--since", "2999-01-01T00:00:00Z", timeout=120)
    assert since.returncode == 0, since.stderr
    assert rows(tmp_path / "none" / "observations.csv") == [] and validation_errors(tmp_path / "none") == []
    check_ebird(tmp_path, daemon, ids)
    # Bad inputs: one line naming the thing, usage error, no traceback.
    config = yaml.safe_load(daemon.config_path.read_text())
    del config["deployment"]["latitude"]
    (tmp_path / "nolat.yaml").write_text(yaml.safe_dump(config))
    bad = run_cli("export", "camtrap-dp", "-c", str(tmp_path / "nolat.yaml"), "--out", str(tmp_path / "x"), timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "birdstream: error: deployment.latitude: needed for the Camtrap DP deployment of camera 'red' "
        "(set it in the config, or --lat/--lon for classify)"]
    bad = run_cli("export", "ebird", "-c", str(tmp_path / "nolat.yaml"), "--out", str(tmp_path / "x.csv"), timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "birdstream: error: deployment.latitude: needed for the eBird export (the station's location)"]
    assert not (tmp_path / "x.csv").exists()
    taxonomy.write_text("name,latin\nScarlet Tanager,Piranga olivacea\n", encoding="utf-8")
    bad = run_cli("export", "camtrap-dp", "-c", str(daemon.config_path), "--out", str(tmp_path / "x"), timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"birdstream: error: {taxonomy}: taxonomy needs the columns common_name and scientific_name "
        "(missing: common_name, scientific_name)"]


EBIRD_COLUMNS = [  # eBird Record Format (Extended), in eBird's order
    "Common Name", "Genus", "Species", "Number", "Species Comments", "Location Name", "Latitude", "Longitude",
    "Date", "Start Time", "State/Province", "Country Code", "Protocol", "Number of Observers", "Duration",
    "All observations reported?", "Effort Distance Miles", "Effort area acres", "Submission Comments"]


def check_ebird(tmp_path: Path, daemon: Daemon, ids: dict[str, str]) -> None:
    out = tmp_path / "ebird.csv"
    result = run_cli("export", "ebird", "-c", str(daemon.config_path), "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    with open(out, newline="", encoding="utf-8") as f:
        records = list(csv.reader(f))
    assert len(records) == 2 and all(len(r) == 19 for r in records)  # no header row: eBird reads every row
    by_species = {r[0]: dict(zip(EBIRD_COLUMNS, r)) for r in records}
    assert sorted(by_species) == ["Green Bee-eater", "Scarlet Tanager"]  # the relabel counts, the false one not
    tanager = by_species["Scarlet Tanager"]
    assert (tanager["Genus"], tanager["Species"], tanager["Number"]) == ("Piranga", "olivacea", "1")
    assert (tanager["Location Name"], tanager["Latitude"], tanager["Longitude"], tanager["Country Code"]) == (
        "Wadi garden", "23.600000", "58.500000", "OM")
    assert tanager["Protocol"] == "Stationary" and tanager["Number of Observers"] == "1"
    assert int(tanager["Duration"]) >= 1 and tanager["All observations reported?"] == "N"
    start = next(e for e in daemon.events() if e["id"] == ids["red"])["started_at"]
    local = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Muscat"))
    assert tanager["Date"] == local.strftime("%m/%d/%Y")
    assert by_species["Green Bee-eater"]["Genus"] == ""  # no scientific name known: eBird matches the common name
    with_header = run_cli("export", "ebird", "-c", str(daemon.config_path), "--out", str(out), "--header", timeout=120)
    assert with_header.returncode == 0 and out.read_text().splitlines()[0] == ",".join(EBIRD_COLUMNS)
