"""Occurrence priors end to end: the planted model, generated videos, the real `birdstream classify`."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from birdstream.publish import load_schema
from birdstream.track.priors import MonthOf
from tests.e2e.conftest import RED, json_lines
from tests.e2e.test_classify import BIRD, classify, sightings
from tests.support.video import Box, make_video

MAY = datetime(2026, 5, 10, 7, 0, 0, tzinfo=timezone.utc)
HEADER = "species,jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec\n"


def _row(species: str, may: float, other: float = 1.0) -> str:
    months = [other] * 12
    months[4] = may
    return species + "," + ",".join(f"{w:g}" for w in months) + "\n"


def _config(tmp_path: Path, priors: str, extra: str = "", name: str = "priors.csv") -> Path:
    (tmp_path / name).write_text(HEADER + priors)
    config = tmp_path / f"config-{name}.yaml"
    config.write_text(f"timezone: UTC\nsightings:\n  priors: {name}\n{extra}")
    return config


def _species(config: Path, planted: Path, *videos: Path) -> list[tuple[str, str, float, bool]]:
    result = classify("-c", str(config), "--model", str(planted), "-q", *map(str, videos))
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stdout)
    schema = load_schema("sighting")
    for event in events:
        jsonschema.validate(event, schema)
    return [(v[0]["stream"], v[0]["species"], v[0]["prior"], v[-1]["event"] == "end") for v in sightings(events).values()]


def test_weight_zero_in_the_frames_month_removes_the_sighting_and_weight_one_keeps_it(
        tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "visit.mp4", duration_s=10, fps=10, creation_time=MAY,
                       objects=[Box(RED, BIRD, start_s=1.0, end_s=9.0)])
    # Ruled out in May, the runner-up class does not inherit the frames either: no sighting at all.
    ruled_out = _config(tmp_path, _row("scarlet tanager", 0.0), name="zero.csv")
    assert _species(ruled_out, planted, video) == []
    control = _config(tmp_path, _row("Scarlet Tanager", 1.0, other=0.0), name="one.csv")
    assert _species(control, planted, video) == [("visit.mp4", "Scarlet Tanager", 1.0, True)]
    # Weight 0 in every month but May: May decides.
    other_months = _config(tmp_path, _row("Scarlet Tanager", 1.0, other=0.0) + _row("Indian Roller", 0.0),
                           name="months.csv")
    assert _species(other_months, planted, video) == [("visit.mp4", "Scarlet Tanager", 1.0, True)]


def test_the_month_is_taken_in_the_stations_time_zone(tmp_path: Path, planted: Path) -> None:
    # 22:00 UTC on 31 May is already June in Muscat (UTC+4).
    late = datetime(2026, 5, 31, 22, 0, 0, tzinfo=timezone.utc)
    video = make_video(tmp_path / "late.mp4", duration_s=8, fps=10, creation_time=late,
                       objects=[Box(RED, BIRD, start_s=1.0, end_s=7.0)])
    months = [1.0] * 12
    months[5] = 0.0  # never in June
    (tmp_path / "june.csv").write_text(HEADER + "Scarlet Tanager," + ",".join(map(str, months)) + "\n")
    for tz, expected in (("UTC", 1), ("Asia/Muscat", 0)):
        config = tmp_path / f"{tz.replace('/', '_')}.yaml"
        config.write_text(f"timezone: {tz}\nsightings:\n  priors: june.csv\n")
        assert len(_species(config, planted, video)) == expected, tz


def test_a_low_weight_drops_a_short_visit_and_keeps_a_long_one(tmp_path: Path, planted: Path) -> None:
    short = make_video(tmp_path / "short.mp4", duration_s=6, fps=10, creation_time=MAY,
                       objects=[Box(RED, BIRD, start_s=1.0, end_s=3.5)])
    long = make_video(tmp_path / "long.mp4", duration_s=12, fps=10, creation_time=MAY,
                      objects=[Box(RED, BIRD, start_s=1.0, end_s=10.0)])
    plain = _config(tmp_path, _row("Scarlet Tanager", 1.0), name="plain.csv")
    assert [s[:2] for s in _species(plain, planted, short, long)] == [
        ("short.mp4", "Scarlet Tanager"), ("long.mp4", "Scarlet Tanager")]
    rare = _config(tmp_path, _row("Scarlet Tanager", 0.3), name="rare.csv")
    assert _species(rare, planted, short, long) == [("long.mp4", "Scarlet Tanager", 0.3, True)]
    # priors_default acts on the species the file leaves out, the same way.
    default = _config(tmp_path, _row("Indian Roller", 1.0), extra="  priors_default: 0.3\n", name="default.csv")
    assert [s[:3] for s in _species(default, planted, short, long)] == [("long.mp4", "Scarlet Tanager", 0.3)]


@pytest.mark.parametrize(("content", "expected"), [
    ("species,jan,feb\n", "priors.csv:1: the header must be species,jan"),
    (HEADER + _row("Scarlet Tanager", 1.0) + "Indian Roller,1,1,1\n", "priors.csv:3: needs 13 fields"),
    (HEADER + _row("Scarlet Tanager", 1.5), "priors.csv:2: may: the weight must be a number from 0 to 1, got '1.5'"),
    (HEADER + "# a comment\n" + _row("Scarlet Tanagr", 1.0), "priors.csv:3: unknown species 'Scarlet Tanagr' "
                                                             "for this model (did you mean 'Scarlet Tanager'?)"),
    (HEADER + _row("Scarlet Tanager", 1.0) + _row("scarlet_tanager", 0.5), "priors.csv:3: 'scarlet_tanager' is "
                                                                           "already on line 2"),
])
def test_a_bad_priors_file_is_one_line_naming_file_and_line(tmp_path: Path, planted: Path, content: str,
                                                            expected: str) -> None:
    video = make_video(tmp_path / "v.mp4", duration_s=1, fps=5)
    (tmp_path / "priors.csv").write_text(content)
    config = tmp_path / "config.yaml"
    config.write_text("sightings:\n  priors: priors.csv\n")
    result = classify("-c", str(config), "--model", str(planted), "-q", str(video))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert result.stdout == ""


def test_a_missing_priors_file_and_a_bad_time_zone_are_config_errors(tmp_path: Path, planted: Path) -> None:
    video = make_video(tmp_path / "v.mp4", duration_s=1, fps=5)
    config = tmp_path / "config.yaml"
    for text, expected in (("sightings:\n  priors: nowhere.csv\n", "nowhere.csv: no such file"),
                           ("timezone: Mars/Olympus\n", "timezone: ")):
        config.write_text(text)
        result = classify("-c", str(config), "--model", str(planted), "-q", str(video))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_month_of_follows_the_time_zone_across_a_month_boundary() -> None:
    month = MonthOf(timezone.utc)
    t = datetime(2026, 5, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()
    assert [month(t), month(t + 1), month(t - 86400 * 31)] == [4, 5, 3]


def test_the_shipped_example_parses() -> None:
    from birdstream.track.priors import read_priors

    table = read_priors(Path(__file__).resolve().parents[2] / "examples" / "priors.csv")
    assert len(table) >= 5 and all(len(weights) == 12 for _, weights, _ in table.rows)
