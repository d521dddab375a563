"""eBird records from sightings: counts, days in the station's time zone, effort."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from birdstream.export import ebird
from birdstream.export.taxonomy import Taxon, Taxonomy


def t(hh: int, mm: int, day: int = 1) -> float:
    return datetime(2024, 5, day, hh, mm, tzinfo=timezone.utc).timestamp()


def test_the_number_is_the_most_sightings_at_once_not_their_sum() -> None:
    assert ebird.most_at_once([(0, 10), (5, 15), (20, 30)]) == 2
    assert ebird.most_at_once([(0, 10), (10, 20)]) == 1  # one leaves as the next arrives: maybe the same bird
    assert ebird.most_at_once([]) == 0
    assert ebird.most_at_once([(7, 7)]) == 1 and ebird.most_at_once([(7, 7), (7, 7)]) == 2  # stills


def test_one_record_per_species_per_local_day_with_effort() -> None:
    station = ebird.Station("garden", 23.6, 58.5, None, "OM-MA", "OM")
    seen = [ebird.Seen("Indian Roller", t(5, 0), t(5, 2)), ebird.Seen("Indian Roller", t(5, 1), t(5, 3)),
            ebird.Seen("Indian Roller", t(19, 0), t(19, 1)),  # 23:00 in Muscat: still May 1st there
            ebird.Seen("Indian Roller", t(21, 0), t(21, 1)),  # 01:00 on May 2nd in Muscat
            ebird.Seen("=cmd", t(6, 0), t(6, 1))]
    taxonomy = Taxonomy({"Indian Roller": Taxon("Indian Roller", "Coracias benghalensis")})
    records = ebird.rows(station, seen, taxonomy, ZoneInfo("Asia/Muscat"), "m@1")
    assert [(r[0], r[1], r[2], r[3], r[8], r[9], r[14]) for r in records] == [
        ("=cmd", "", "", "1", "05/01/2024", "09:00", "841"),
        ("Indian Roller", "Coracias", "benghalensis", "2", "05/01/2024", "09:00", "841"),
        ("Indian Roller", "Coracias", "benghalensis", "1", "05/02/2024", "01:00", "1")]
    assert records[0][5] == "garden" and records[0][10:13] == ["OM-MA", "OM", "Stationary"]
    out = io.StringIO()
    assert ebird.write(out, records) == 3
    assert out.getvalue().startswith("'=cmd,")  # a spreadsheet shows it as text, never runs it
