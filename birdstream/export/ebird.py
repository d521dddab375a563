"""eBird Record Format (Extended): one row per species per day per station, for eBird's CSV import.

The 19 columns, in eBird's order, as its import documents them (no header row: eBird reads every
row as a record): Common Name, Genus, Species, Number, Species Comments, Location Name, Latitude,
Longitude, Date (MM/DD/YYYY), Start Time (HH:MM), State/Province, Country Code, Protocol, Number of
Observers, Duration (minutes), All observations reported? (Y/N), Effort Distance Miles, Effort area
acres, Submission Comments.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import IO

from birdstream.export.taxonomy import Taxonomy

COLUMNS = ("Common Name", "Genus", "Species", "Number", "Species Comments", "Location Name", "Latitude",
           "Longitude", "Date", "Start Time", "State/Province", "Country Code", "Protocol", "Number of Observers",
           "Duration", "All observations reported?", "Effort Distance Miles", "Effort area acres",
           "Submission Comments")
PROTOCOL = "Stationary"  # a camera watches one spot


@dataclass(frozen=True)
class Station:
    name: str
    latitude: float
    longitude: float
    location_name: str | None = None
    state_province: str | None = None
    country_code: str | None = None


@dataclass(frozen=True)
class Seen:
    species: str  # after review
    start: float
    end: float


def most_at_once(spans: Sequence[tuple[float, float]]) -> int:
    """The most sightings open at one moment: the count a birder would give (the same bird comes back)."""
    # An end at the very moment of a start comes first (maybe the same bird); a lone still lasts an instant.
    edges = sorted([(s, 1) for s, _ in spans] + [(max(e, s + 1e-6), -1) for s, e in spans])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def rows(station: Station, seen: Iterable[Seen], taxonomy: Taxonomy, tz: tzinfo | None,
         model: str) -> list[list[str]]:
    """The records, ordered by day then species; effort is the span from the day's first to last sighting."""
    days: dict[date, list[Seen]] = {}
    for s in seen:
        days.setdefault(datetime.fromtimestamp(s.start, tz).date(), []).append(s)
    out = []
    for day in sorted(days):
        items = days[day]
        first, last = min(s.start for s in items), max(s.end for s in items)
        begin = datetime.fromtimestamp(first, tz)
        minutes = max(1, math.ceil((last - first) / 60))
        for species in sorted({s.species for s in items}):
            spans = [(s.start, s.end) for s in items if s.species == species]
            taxon = taxonomy.lookup(species)
            genus, _, epithet = (taxon.scientific_name.partition(" ") if taxon and taxon.rank == "species"
                                 else ("", "", ""))
            out.append([species, genus, epithet, str(most_at_once(spans)),
                        f"{len(spans)} sighting(s) by an automated camera; the number is the most at once",
                        station.location_name or station.name, f"{station.latitude:.6f}",
                        f"{station.longitude:.6f}", begin.strftime("%m/%d/%Y"), begin.strftime("%H:%M"),
                        station.state_province or "", station.country_code or "", PROTOCOL, "1", str(minutes),
                        "N", "", "", f"birdstream station {station.name}, machine classification by {model}"])
    return out


def write(out: IO[str], records: Iterable[Sequence[str]], header: bool = False) -> int:
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    n = 0
    for record in records:
        writer.writerow([_cell(v) for v in record])
        n += 1
    return n


def _cell(text: str) -> str:
    # A species or place name that a spreadsheet would run as a formula is shown as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def write_file(path: Path, records: Iterable[Sequence[str]], header: bool = False) -> int:
    with open(path, "w", encoding="utf-8", newline="") as f:
        return write(f, records, header)
