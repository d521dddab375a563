"""Occurrence priors: how likely each species is at this station in each month, and what that asks of the evidence.

A priors file is a CSV with a header ``species,jan,feb,...,dec`` and one row per species, each
month an expected-occurrence weight from 0 to 1. Species not in the file take ``default``.

How a weight acts (never renormalised over the other species):

- The weight scales the odds of that one species against "not this species": a smoothed score p
  counts as p' = w p / (w p + 1 - p). A species starts a sighting when p' reaches its enter score,
  i.e. when p >= e / (e + w (1 - e)). With enter 0.6: w 1 -> 0.6, w 0.5 -> 0.75, w 0.1 -> 0.94,
  w 0 -> never.
- It also needs longer support: min_frames * (1 + log2(1 / w)) frames (w 0.5 doubles it).
- The candidate of a frame is still the best-scoring allowed species; a prior only raises that
  species' bar. So a species ruled out this month never turns its frames into a sighting of the
  runner-up.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

import numpy as np

from birdstream.errors import ConfigError

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


@dataclass(frozen=True)
class PriorTable:
    """The rows of a priors file: species as written, its 12 monthly weights, the line it came from."""

    source: str
    rows: tuple[tuple[str, tuple[float, ...], int], ...]

    def __len__(self) -> int:
        return len(self.rows)


def read_priors(path: Path | str) -> PriorTable:
    """Read and check a priors CSV file; every problem is one ConfigError naming the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"sightings.priors: {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"sightings.priors: {path}: is a folder, not a CSV file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"sightings.priors: {path}: not a UTF-8 text file") from None
    except OSError as err:
        raise ConfigError(f"sightings.priors: {path}: cannot read ({err.strerror or err})") from None
    return parse_priors(text, str(path))


def parse_priors(text: str, source: str) -> PriorTable:
    """Parse a priors CSV text; `source` names it in errors ("FILE:LINE: ...")."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ConfigError(f"{source}: empty priors file (needs a header: species,{','.join(MONTHS)})")
    header_line, header = lines[0]
    columns = [c.strip().lower() for c in next(csv.reader(io.StringIO(header)))]
    if columns != ["species", *MONTHS]:
        raise ConfigError(f"{source}:{header_line}: the header must be species,{','.join(MONTHS)}; "
                          f"got {header.strip()[:80]!r}")
    rows: list[tuple[str, tuple[float, ...], int]] = []
    seen: dict[str, int] = {}
    for n, line in lines[1:]:
        cells = [c.strip() for c in next(csv.reader(io.StringIO(line)))]
        if len(cells) != 13:
            raise ConfigError(f"{source}:{n}: needs 13 fields (species and 12 months), got {len(cells)}")
        name = cells[0]
        if not name:
            raise ConfigError(f"{source}:{n}: the species is empty")
        weights = tuple(_weight(cell, month, source, n) for cell, month in zip(cells[1:], MONTHS))
        key = name.casefold()
        if key in seen:
            raise ConfigError(f"{source}:{n}: {name!r} is already on line {seen[key]}")
        seen[key] = n
        rows.append((name, weights, n))
    return PriorTable(source, tuple(rows))


def _weight(cell: str, month: str, source: str, line: int) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not (0.0 <= value <= 1.0):
        raise ConfigError(f"{source}:{line}: {month}: the weight must be a number from 0 to 1, got {cell!r}")
    return value


def prior_matrix(table: PriorTable | None, index: Mapping[str, int], default: float) -> np.ndarray:
    """float64 [12, n_classes] of weights; the table's names already spelled as the model's classes."""
    out = np.full((12, len(index)), float(default), dtype=np.float64)
    if table is not None:
        for name, weights, _line in table.rows:
            out[:, index[name]] = weights
    return out


def enter_for(enter: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The smoothed score each species needs under its weight (inf where the weight is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        need = enter / (enter + weight * (1.0 - enter))
    return np.where(weight > 0, np.minimum(need, 1.0), np.inf)


def frames_for(min_frames: int, weight: np.ndarray) -> np.ndarray:
    """Supporting frames each species needs under its weight (a huge number where the weight is 0)."""
    with np.errstate(divide="ignore"):
        factor = 1.0 + np.log2(1.0 / np.maximum(weight, 1e-12))
    return np.ceil(min_frames * factor - 1e-9).astype(np.int64)


class MonthOf:
    """Epoch seconds -> month index 0..11 in a time zone, cached per month (frames come in order)."""

    def __init__(self, tz: tzinfo | None) -> None:
        self._tz = tz
        self._span: tuple[float, float, int] | None = None

    def __call__(self, t: float) -> int:
        span = self._span
        if span is not None and span[0] <= t < span[1]:
            return span[2]
        dt = datetime.fromtimestamp(t, self._tz)  # tz None: naive local time, and timestamp() reads it back so
        start = dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        self._span = (start.timestamp(), nxt.timestamp(), dt.month - 1)
        return dt.month - 1


class PriorRule:
    """What one tracker asks of each species at a given time: enter score, exit score, frames, weight.

    Without priors (no file, default 1) it hands back the base arrays and costs nothing per frame.
    """

    def __init__(self, enter: np.ndarray, exit_ratio: float, min_frames: int, matrix: np.ndarray | None,
                 tz: tzinfo | None, *, scale_frames: bool = True) -> None:
        self.active = matrix is not None and bool(np.any(matrix < 1.0))
        self._base = (enter, enter * exit_ratio, np.full(enter.shape, min_frames, dtype=np.int64))
        self._month = MonthOf(tz)
        if self.active:
            assert matrix is not None
            self._weights = matrix
            self._enter = enter_for(enter[None, :], matrix)
            self._exit = np.where(np.isfinite(self._enter), self._enter * exit_ratio, np.inf)
            self._frames = frames_for(min_frames, matrix) if scale_frames else \
                np.full(matrix.shape, min_frames, dtype=np.int64)

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(enter, exit, min_frames) arrays over the classes for a frame at epoch seconds t."""
        if not self.active:
            return self._base
        m = self._month(t)
        return self._enter[m], self._exit[m], self._frames[m]

    def weight(self, species: int, t: float) -> float:
        return float(self._weights[self._month(t), species]) if self.active else 1.0
