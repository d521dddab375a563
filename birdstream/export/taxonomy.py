"""The model's class names (common names) -> scientific names, from the shipped table and an override file."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from birdstream.errors import ConfigError

log = logging.getLogger(__name__)

COLUMNS = ("common_name", "scientific_name", "rank", "source", "source_version", "licence")
RANKS = frozenset({"kingdom", "phylum", "class", "order", "family", "genus", "species", "subspecies"})


class TaxonomyError(ConfigError):
    """A taxonomy file that cannot be read or has a bad row."""


@dataclass(frozen=True)
class Taxon:
    common_name: str
    scientific_name: str
    rank: str = "species"
    source: str = ""
    source_version: str = ""
    licence: str = ""


class Taxonomy:
    """Looks up scientific names by class name (case-insensitive); reports each unknown class once."""

    def __init__(self, taxa: dict[str, Taxon]) -> None:
        self._taxa = {key.casefold(): taxon for key, taxon in taxa.items()}
        self._reported: set[str] = set()

    def __len__(self) -> int:
        return len(self._taxa)

    def lookup(self, common_name: str) -> Taxon | None:
        taxon = self._taxa.get(common_name.casefold())
        if taxon is None and common_name not in self._reported:
            self._reported.add(common_name)
            log.warning("taxonomy: no scientific name for class %r; exported with its common name only "
                        "(add it to the taxonomy: file)", common_name)
        return taxon

    @property
    def unknown(self) -> frozenset[str]:
        """The class names looked up without a scientific name."""
        return frozenset(self._reported)


def read_table(path: Path | None = None) -> dict[str, Taxon]:
    """One taxonomy CSV (COLUMNS; rank, source, source_version, licence optional); the shipped one without a path."""
    if path is None:
        text = resources.files("birdstream.export").joinpath("data/taxonomy.csv").read_text(encoding="utf-8")
        where = "birdstream/export/data/taxonomy.csv"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TaxonomyError(f"{path}: cannot read the taxonomy file ({exc.__class__.__name__})") from None
        where = str(path)
    return _parse(text, where)


def _parse(text: str, where: str) -> dict[str, Taxon]:
    reader = csv.DictReader(text.splitlines())
    missing = {"common_name", "scientific_name"} - set(reader.fieldnames or ())
    if missing:
        raise TaxonomyError(f"{where}: taxonomy needs the columns common_name and scientific_name "
                            f"(missing: {', '.join(sorted(missing))})")
    taxa: dict[str, Taxon] = {}
    for line, row in enumerate(reader, 2):
        common = (row.get("common_name") or "").strip()
        scientific = (row.get("scientific_name") or "").strip()
        rank = (row.get("rank") or "species").strip() or "species"
        if not common or not scientific:
            raise TaxonomyError(f"{where}:{line}: common_name and scientific_name must both be set")
        if rank not in RANKS:
            raise TaxonomyError(f"{where}:{line}: rank {rank!r} is not one of {', '.join(sorted(RANKS))}")
        taxa[common] = Taxon(common, scientific, rank, *((row.get(k) or "").strip() for k in COLUMNS[3:]))
    return taxa


def load_taxonomy(override: Path | None = None) -> Taxonomy:
    """The shipped table, with the rows of ``override`` (the ``taxonomy:`` key) replacing or extending it."""
    taxa = read_table()
    if override is not None:
        taxa.update(read_table(override))
    return Taxonomy(taxa)
