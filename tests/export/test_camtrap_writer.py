"""The Camtrap DP writer on its own: boxes, blanks, scientific names, validated like the end-to-end packages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from birdstream.export.camtrap_dp import CamtrapError, MediaFile, Place, Sighting, write_package
from birdstream.export.taxonomy import Taxon, Taxonomy
from tests.support.camtrap import validation_errors

T = 1_714_543_200.0  # 2024-05-01T06:00:00Z


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_boxes_become_bbox_fields_and_scientific_names_the_taxonomic_list(tmp_path: Path) -> None:
    out = tmp_path / "package"
    (out / "media").mkdir(parents=True)
    still = out / "media" / "IMG_1.jpg"
    still.write_bytes(b"")
    sightings = [Sighting("a", "cam", "Indian Roller", 0.91, T, T + 5, "m@1", box=[0.25, 0.5, 0.125, 0.2]),
                 Sighting("b", "cam", "Mystery bird", 0.7, T + 60, T + 61, "m@1", box=None)]
    counts = write_package(out, station="garden", places={"cam": Place(23.6, 58.5, "Wadi", "Pi HQ", 1.2)},
                           media=[MediaFile("cam", str(still), T, "image/jpeg", sightings=1)],
                           sightings=sightings, created=T + 100,
                           taxonomy=Taxonomy({"Indian Roller": Taxon("Indian Roller", "Coracias benghalensis")}))
    assert counts == {"deployments": 1, "media": 1, "observations": 2}
    assert validation_errors(out) == []
    obs = {o["observationID"]: o for o in rows(out / "observations.csv")}
    assert [obs["a"][k] for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")] == ["0.25", "0.5", "0.125", "0.2"]
    assert [obs["b"][k] for k in ("bboxX", "scientificName")] == ["", ""]
    assert obs["a"]["scientificName"] == "Coracias benghalensis"
    assert rows(out / "media.csv")[0]["filePath"] == "media/IMG_1.jpg"  # inside the package: relative
    descriptor = json.loads((out / "datapackage.json").read_text())
    assert descriptor["taxonomic"] == [{"scientificName": "Coracias benghalensis", "taxonRank": "species",
                                        "vernacularNames": {"eng": "Indian Roller"}}]
    assert descriptor["spatial"] == {"type": "Point", "coordinates": [58.5, 23.6]}
    assert descriptor["temporal"] == {"start": "2024-05-01", "end": "2024-05-01"}


def test_a_camera_without_coordinates_writes_nothing_and_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(CamtrapError, match=r"^deployment\.streams\.cam2\.longitude: needed .* camera 'cam2'"):
        write_package(tmp_path / "p", station="s", places={"cam2": Place(23.6, None, where="deployment.streams.cam2")},
                      media=[MediaFile("cam2", "/x.jpg", T, "image/jpeg")], sightings=[], taxonomy=Taxonomy({}),
                      created=T)
    assert not (tmp_path / "p").exists()


def test_an_unwritable_package_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CamtrapError, match="file/p: cannot write the Camtrap DP package"):
        write_package(tmp_path / "file" / "p", station="s", places={"c": Place(1, 2)},
                      media=[MediaFile("c", "/x.jpg", T, "image/jpeg")], sightings=[], taxonomy=Taxonomy({}),
                      created=T)
