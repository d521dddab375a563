"""The taxonomy table: the shipped file, the `taxonomy:` override, bad rows, unknown classes reported once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from birdstream.export.taxonomy import COLUMNS, TaxonomyError, load_taxonomy, read_table


def test_the_shipped_table_has_the_documented_columns() -> None:
    from importlib import resources

    text = resources.files("birdstream.export").joinpath("data/taxonomy.csv").read_text(encoding="utf-8")
    assert tuple(text.splitlines()[0].split(",")) == COLUMNS
    for taxon in read_table().values():  # every shipped row says where it comes from and under what licence
        assert taxon.source and taxon.source_version and taxon.licence


def test_an_override_extends_the_table_and_matches_names_whatever_their_case(tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    override = tmp_path / "taxa.csv"
    override.write_text("common_name,scientific_name,rank\nIndian Roller,Coracias benghalensis,species\n"
                        "Rollers,Coracias,genus\n", encoding="utf-8")
    taxonomy = load_taxonomy(override)
    assert taxonomy.lookup("indian roller").scientific_name == "Coracias benghalensis"  # type: ignore[union-attr]
    assert taxonomy.lookup("Rollers").rank == "genus"  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING):
        assert taxonomy.lookup("Mystery bird") is None and taxonomy.lookup("Mystery bird") is None
    assert [r.getMessage().count("Mystery bird") for r in caplog.records] == [1]
    assert taxonomy.unknown == {"Mystery bird"}


@pytest.mark.parametrize(("text", "message"), [
    ("name,latin\n", "taxonomy needs the columns common_name and scientific_name"),
    ("common_name,scientific_name,rank\nIndian Roller,,species\n", ":2: common_name and scientific_name must both"),
    ("common_name,scientific_name,rank\nIndian Roller,Coracias benghalensis,specis\n", ":2: rank 'specis' is not"),
])
def test_a_bad_taxonomy_file_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "taxa.csv"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy(bad)
    assert str(err.value).startswith(str(bad)) and message in str(err.value) and "\n" not in str(err.value)


def test_an_unreadable_taxonomy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="cannot read the taxonomy file"):
        load_taxonomy(tmp_path / "missing.csv")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(TaxonomyError, match="binary.csv: cannot read"):
        load_taxonomy(tmp_path / "binary.csv")


def test_check_config_names_a_bad_taxonomy_file(tmp_path: Path) -> None:
    from tests.support.cli import run_cli

    (tmp_path / "taxa.csv").write_text("name,latin\n", encoding="utf-8")
    (tmp_path / "config.yaml").write_text("streams: [{id: a, url: a.mp4}]\ntaxonomy: taxa.csv\n", encoding="utf-8")
    result = run_cli("check-config", "-c", str(tmp_path / "config.yaml"), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"birdstream: error: {tmp_path / 'taxa.csv'}: taxonomy needs the columns common_name and scientific_name "
        "(missing: common_name, scientific_name)"]
