"""Tracker settings (the `sightings:` config section) and checks of species names against the model."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from birdstream.errors import ConfigError
from birdstream.track.priors import PriorTable


@dataclass(frozen=True, kw_only=True)
class TrackOptions:
    """How predictions become sightings: the `sightings:` config section (its defaults live there).

    station/wiring.py builds these from the config; no field has a default of its own.
    """

    enter_score: float  # smoothed score a species needs to start a sighting
    exit_score: float  # a sighting keeps being supported while its smoothed score stays at or above this
    min_frames: int  # supporting sampled frames in a row before a sighting starts
    end_after_s: float  # a sighting ends this long after its last supporting frame
    smoothing_s: float  # time constant (seconds) of the exponential smoothing; 0 = none
    max_frame_s: float  # the most time one frame may stand for (1 / sample_fps)
    update_min_delta: float  # send an update when the score rises this much over the last event; 0 = never
    update_every_s: float  # send an update at least this often while supported; 0 = never
    top_k: int  # entries in an event's `top`
    allow: tuple[str, ...]  # only these species make sightings (empty = all)
    deny: tuple[str, ...]  # these species never make sightings
    thresholds: Mapping[str, float]  # species -> its own enter score
    scenery: bool  # learn what the static scene scores and require motion to start a sighting
    motion_min: float  # Frame.motion at or above this counts as movement
    motion_window_s: float  # a sighting may start only this soon after a moving frame
    baseline_margin: float  # a species must beat the static scene's score for it by this much
    baseline_s: float  # time constant (seconds) of the static-scene baseline
    still_limit_s: float  # a sighting with no movement this long is scenery and ends; 0 = never
    # Occurrence priors (track/priors.py): the station's species x month weights and the weight of
    # species not in them; timezone (IANA name, None = the system's) decides a frame's month.
    priors: PriorTable | None
    priors_default: float
    timezone: str | None
    new_species_min_frames: int | None  # frames a species never seen at the station needs
    prior_frames: bool = True  # a low weight also asks for more frames (not for a lone still: it has one)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", tuple(self.allow))
        object.__setattr__(self, "deny", tuple(self.deny))
        object.__setattr__(self, "thresholds", types.MappingProxyType(dict(self.thresholds)))
        _check_unit("enter_score", self.enter_score, low_open=True)
        _check_unit("exit_score", self.exit_score)
        if self.exit_score >= self.enter_score:  # as the config checks it: exit strictly below enter
            raise ConfigError(
                f"sightings.exit_score: must be lower than enter_score ({self.enter_score:g}), got {self.exit_score:g}"
            )
        if not isinstance(self.min_frames, int) or self.min_frames < 1:
            raise ConfigError(f"sightings.min_frames: must be an integer >= 1, got {self.min_frames!r}")
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise ConfigError(f"sightings.top_k: must be an integer >= 1, got {self.top_k!r}")
        _check_seconds("end_after_s", self.end_after_s, positive=True)
        _check_seconds("max_frame_s", self.max_frame_s, positive=True)
        for name in ("smoothing_s", "update_every_s", "motion_window_s", "still_limit_s"):
            _check_seconds(name, getattr(self, name))
        _check_seconds("baseline_s", self.baseline_s, positive=True)
        _check_unit("update_min_delta", self.update_min_delta)
        _check_unit("motion_min", self.motion_min)
        _check_unit("baseline_margin", self.baseline_margin)
        for species, score in self.thresholds.items():
            _check_unit(f"thresholds[{species!r}]", score, low_open=True)
        both = sorted(set(self.allow) & set(self.deny))
        if both:
            raise ConfigError(f"sightings.deny: {both[0]!r} is also in sightings.allow")
        _check_unit("priors_default", self.priors_default)
        n = self.new_species_min_frames
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ConfigError(f"sightings.new_species.min_frames: must be an integer >= 1, got {n!r}")

    def __hash__(self) -> int:
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        return hash(tuple(tuple(sorted(v.items())) if isinstance(v, Mapping) else v for v in values))

    def for_sample_fps(self, sample_fps: float) -> TrackOptions:
        """These options for a stream sampled at `sample_fps`: one frame stands for 1 / sample_fps seconds."""
        if not sample_fps > 0:
            raise ConfigError(f"sample_fps: must be > 0, got {sample_fps!r}")
        return dataclasses.replace(self, max_frame_s=1.0 / float(sample_fps))


def _check_unit(name: str, value: object, *, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (0.0 < value if low_open else 0.0 <= value) and value <= 1.0
    if not ok:
        span = "(0, 1]" if low_open else "[0, 1]"
        raise ConfigError(f"sightings.{name}: must be a number in {span}, got {value!r}")


def _check_seconds(name: str, value: object, *, positive: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > 0 if positive else value >= 0
    if not ok:
        need = "> 0" if positive else ">= 0"
        raise ConfigError(f"sightings.{name}: must be a number of seconds {need}, got {value!r}")


def _fold(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").split()).casefold()


def resolve_species(names: Sequence[str], class_names: Sequence[str], key: str) -> tuple[str, ...]:
    """Map user-written species names to the model's class names, or raise ConfigError naming `key`.

    Case, underscores, hyphens and repeated spaces do not matter; an unknown name gets a
    "did you mean" suggestion from the model's classes.
    """
    if not names:
        return ()  # the common case, for every new tracker: no need to fold 735 class names
    exact = set(class_names)
    folded = {_fold(c): c for c in class_names}
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{key}: species names must be non-empty strings, got {name!r}")
        if name in exact:
            out.append(name)
            continue
        match = folded.get(_fold(name))
        if match is not None:
            out.append(match)
            continue
        close = difflib.get_close_matches(_fold(name), list(folded), n=1, cutoff=0.6)
        hint = f" (did you mean {folded[close[0]]!r}?)" if close else ""
        raise ConfigError(f"{key}: unknown species {name!r} for this model{hint}")
    return tuple(out)


def check_species(options: TrackOptions, class_names: Sequence[str]) -> TrackOptions:
    """Options with allow/deny/thresholds names checked and spelled as the model's class names."""
    allow = resolve_species(options.allow, class_names, "sightings.allow")
    deny = resolve_species(options.deny, class_names, "sightings.deny")
    keys = resolve_species(list(options.thresholds), class_names, "sightings.thresholds")
    thresholds = dict(zip(keys, options.thresholds.values(), strict=True))
    priors = options.priors
    if priors is not None:  # spelled as the model's classes; an unknown name is an error naming its line
        rows: dict[str, tuple[str, tuple[float, ...], int]] = {}
        for name, weights, line in priors.rows:
            cls = resolve_species([name], class_names, f"{priors.source}:{line}")[0]
            if cls in rows:
                raise ConfigError(f"{priors.source}:{line}: {name!r} is already on line {rows[cls][2]}")
            rows[cls] = (cls, weights, line)
        priors = PriorTable(priors.source, tuple(rows.values()))
    return dataclasses.replace(options, allow=allow, deny=deny, thresholds=thresholds, priors=priors)
