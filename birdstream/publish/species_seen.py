"""``state_dir/species_seen.json``: every species this station has ever sighted, kept across restarts.

It decides an event's ``first_at_station`` and the stricter ``sightings.new_species`` rule. When the
file is missing (a new station, or one upgraded from a version without it) or unreadable, it is
rebuilt from the sightings log (``sightings.jsonl`` and its rotated files), so a species already in
the log is never announced as new again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from birdstream.publish.jsonl import FILE_NAME as LOG_NAME

log = logging.getLogger(__name__)

FILE_NAME = "species_seen.json"


class SpeciesSeen:
    """A thread-safe set of species names, written through to a JSON file (atomic replace)."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILE_NAME
        self._lock = threading.Lock()
        self._failing = False
        self._first: dict[str, str] = self._load()

    def __contains__(self, species: object) -> bool:
        return species in self._first

    def __len__(self) -> int:
        return len(self._first)

    def add(self, species: str) -> bool:
        """Remember a species; True when it is new to the station (then the file is rewritten)."""
        with self._lock:
            if species in self._first:
                return False
            self._first[species] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._write()
            return True

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            species = data["species"]
            if not isinstance(species, dict) or not all(isinstance(k, str) for k in species):
                raise TypeError("species is not a mapping of names")
            return {k: str(v) for k, v in species.items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("%s: unreadable (%s); rebuilding it from the sightings log", self.path, err)
        self._first = self._from_log()
        if self._first or self.path.exists():  # written once, so a big log is not read at every start
            with self._lock:
                self._write()
        return self._first

    def _from_log(self) -> dict[str, str]:
        """The species of every start event in sightings.jsonl and its rotated files."""
        found: dict[str, str] = {}
        logs = sorted(self.state_dir.glob(LOG_NAME + "*"), key=_oldest_first)
        for path in logs:
            try:
                with open(path, "rb") as fh:
                    for line in fh:
                        _take(line, found)
            except OSError as err:
                log.warning("%s: cannot read (%s); its species are not known as seen", path, err.strerror or err)
        return found

    def _write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"species": self._first}, ensure_ascii=False, indent=0), encoding="utf-8")
            os.replace(tmp, self.path)
            self._failing = False
        except OSError as err:
            # Kept in memory either way; one line per failure episode.
            if not self._failing:
                log.error("%s: cannot write (%s); seen species are kept until restart", self.path,
                          err.strerror or err)
            self._failing = True


def _oldest_first(path: Path) -> int:
    suffix = path.name[len(LOG_NAME):].lstrip(".")
    return -int(suffix) if suffix.isdigit() else 0


def _take(line: bytes, found: dict[str, str]) -> None:
    try:
        event = json.loads(line)
    except ValueError:
        return
    if isinstance(event, dict) and event.get("event") == "start" and isinstance(event.get("species"), str):
        found.setdefault(event["species"], str(event.get("started_at", "")))
