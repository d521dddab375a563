"""Camtrap DP 1.0.2 packages from `classify --camtrap-dp`, validated with frictionless against the official schemas."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import BLUE, RED
from tests.support.camtrap import validation_errors
from tests.support.cli import run_cli
from tests.support.megadetector import format_errors
from tests.support.video import Box, make_still, make_video

BIRD = (110, 70, 100, 90)
T0 = datetime(2024, 5, 1, 6, 0, 0)


def make_card(card: Path) -> None:
    """cam1: a burst of three stills with a bird, then two blank stills; cam2: a clip with a bird, one blank still."""
    (card / "cam1").mkdir(parents=True)
    (card / "cam2").mkdir(parents=True)
    for i in range(3):
        make_still(card / "cam1" / f"IMG_{i}.jpg", objects=[Box(RED, BIRD)], taken_at=T0 + timedelta(seconds=2 * i),
                   seed=i)
    for i in range(3, 5):
        make_still(card / "cam1" / f"IMG_{i}.jpg", taken_at=T0 + timedelta(hours=1, seconds=2 * i), seed=i)
    make_video(card / "cam2" / "CLIP_0.mp4", duration_s=4, fps=10, objects=[Box(BLUE, BIRD, 0.8, 3.2)])
    make_still(card / "cam2" / "IMG_9.jpg", taken_at=T0 + timedelta(hours=2), seed=9)
    (card / "cam2" / "IMG_BAD.jpg").write_bytes(b"\xff\xd8 not a picture")


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory, planted: Path) -> Path:
    root = tmp_path_factory.mktemp("camtrap")
    make_card(root / "card")
    out = root / "package"
    result = run_cli("classify", "-q", "--model", str(planted), "--camtrap-dp", str(out), "--lat", "23.6",
                     "--megadetector-json", str(root / "md.json"),
                     "--lon", "58.5", "--location-name", "Wadi garden", str(root / "card"), timeout=300)
    assert result.returncode == 1 and result.stderr.count("IMG_BAD.jpg") == 1, result.stderr  # named, once
    return out


def test_classify_writes_a_package_valid_against_the_official_1_0_2_schemas(package: Path) -> None:
    assert sorted(p.name for p in package.iterdir()) == [
        "datapackage.json", "deployments.csv", "media.csv", "observations.csv"]
    assert validation_errors(package) == []
    descriptor = json.loads((package / "datapackage.json").read_text())
    assert descriptor["profile"] == "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json"
    assert {r["schema"] for r in descriptor["resources"]} == {
        f"https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/{t}-table-schema.json"
        for t in ("deployments", "media", "observations")}


def test_one_deployment_per_camera_folder_every_file_a_medium_blanks_marked(package: Path) -> None:
    deployments = {d["deploymentID"]: d for d in rows(package / "deployments.csv")}
    assert sorted(deployments) == ["cam1", "cam2"]
    assert {(d["latitude"], d["longitude"], d["locationName"]) for d in deployments.values()} == {
        ("23.6", "58.5", "Wadi garden")}
    media = rows(package / "media.csv")
    assert sorted((m["deploymentID"], m["fileName"]) for m in media) == [
        ("cam1", f"IMG_{i}.jpg") for i in range(5)] + [("cam2", "CLIP_0.mp4"), ("cam2", "IMG_9.jpg")]
    assert all(m["filePath"].startswith("file:///") for m in media)  # outside the package: a URL, never '..'
    assert {m["fileMediatype"] for m in media} == {"image/jpeg", "video/mp4"}
    observations = rows(package / "observations.csv")
    blank = {o["mediaID"] for o in observations if o["observationType"] == "blank"}
    names = {m["mediaID"]: m["fileName"] for m in media}
    assert sorted(names[b] for b in blank) == ["IMG_3.jpg", "IMG_4.jpg", "IMG_9.jpg"]


def test_one_machine_observation_per_sighting_at_event_level(package: Path) -> None:
    animals = [o for o in rows(package / "observations.csv") if o["observationType"] == "animal"]
    assert sorted((o["deploymentID"], o["observationTags"]) for o in animals) == [
        ("cam1", "vernacularName:Scarlet Tanager"), ("cam2", "vernacularName:Indian Roller")]
    for o in animals:
        assert o["observationLevel"] == "event" and o["classificationMethod"] == "machine"
        assert o["classifiedBy"].startswith("planted") or "@" in o["classifiedBy"]
        assert 0.6 <= float(o["classificationProbability"]) <= 1
        assert o["eventStart"] <= o["eventEnd"] and o["eventID"] == o["observationID"]
    burst = next(o for o in animals if o["deploymentID"] == "cam1")
    assert (burst["eventStart"], burst["eventEnd"]) == ("2024-05-01T06:00:00Z", "2024-05-01T06:00:04Z")


def test_a_package_that_breaks_the_schema_is_caught_by_the_same_validation(package: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in package.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    text = (broken / "observations.csv").read_text()
    (broken / "observations.csv").write_text(text.replace(",machine,", ",robot,", 1))
    errors = validation_errors(broken)
    assert any("classificationMethod" in e or "robot" in e for e in errors), errors
    descriptor = json.loads((package / "datapackage.json").read_text())
    del descriptor["temporal"]
    (broken / "observations.csv").write_text(text)
    (broken / "datapackage.json").write_text(json.dumps(descriptor))
    assert any("temporal" in e for e in validation_errors(broken))


def test_the_megadetector_json_follows_the_format_with_video_frames(package: Path) -> None:
    doc = json.loads((package.parent / "md.json").read_text())
    assert format_errors(doc) == []
    assert doc["info"]["format_version"] == "1.6" and doc["detection_categories"] == {"1": "animal"}
    classes = doc["classification_categories"]
    assert "Scarlet Tanager" in classes.values() and "Indian Roller" in classes.values()
    images = {im["file"]: im for im in doc["images"]}
    assert sorted(images) == [f"cam1/IMG_{i}.jpg" for i in range(5)] + [
        "cam2/CLIP_0.mp4", "cam2/IMG_9.jpg", "cam2/IMG_BAD.jpg"]
    assert images["cam2/IMG_BAD.jpg"]["detections"] is None and "IMG_BAD.jpg" in images["cam2/IMG_BAD.jpg"]["failure"]
    for i in range(3):  # the burst: each still shows the bird
        [det] = images[f"cam1/IMG_{i}.jpg"]["detections"]
        assert classes[det["classifications"][0][0]] == "Scarlet Tanager" and det["conf"] >= 0.6
        assert det["bbox"] == [0.0, 0.0, 1.0, 1.0] or len(det["bbox"]) == 4
    assert [images[f]["detections"] for f in ("cam1/IMG_3.jpg", "cam1/IMG_4.jpg", "cam2/IMG_9.jpg")] == [[], [], []]
    clip = images["cam2/CLIP_0.mp4"]
    assert clip["frame_rate"] == 10 and clip["frames_processed"][:3] == [0, 5, 10]  # 2 frames/s of a 10 fps clip
    [det] = clip["detections"]
    assert classes[det["classifications"][0][0]] == "Indian Roller"
    assert det["frame_number"] in clip["frames_processed"] and 5 <= det["frame_number"] <= 15  # arrives at 0.8 s
    assert "frame_rate" not in images["cam1/IMG_0.jpg"]


def test_the_megadetector_check_can_fail() -> None:
    bad = {"info": {"format_version": 1.6}, "detection_categories": {"1": "animal"}, "images": [
        {"file": "a.mp4", "detections": [{"category": "2", "conf": 1.5, "bbox": [0, 0, 2, 1]}]},
        {"file": "b.jpg", "failure": "unreadable", "detections": []}]}
    assert len(format_errors(bad)) == 8  # version, frame_rate, frames_processed, category, conf, bbox,
    # frame_number, and a failure with a detections list


def test_without_coordinates_classify_refuses_before_any_work(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "v.mp4", duration_s=1)
    result = run_cli("classify", "-q", "--model", str(planted), "--camtrap-dp", str(tmp_path / "p"), str(video),
                     timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "birdstream: error: --camtrap-dp: deployment.latitude is needed (set it in the config or give --lat)"]
    assert not (tmp_path / "p").exists()
