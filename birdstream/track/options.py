"""Tracker settings (the `sightings:` config section) and checks of species names against the model."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from birdstream.errors import ConfigError


@dataclass(frozen=True)
class TrackOptions:
    """How predictions become sightings; defaults match config.yaml's `sightings:` section."""

    enter_score: float = 0.6  # smoothed score a species needs to start a sighting
    exit_score: float = 0.4  # a sighting keeps being supported while its smoothed score stays at or above this
    min_frames: int = 2  # supporting sampled frames in a row before a sighting starts
    end_after_s: float = 10.0  # a sighting ends this long after its last supporting frame
    smoothing_s: float = 1.0  # time constant (seconds) of the exponential smoothing; 0 = none
    max_frame_s: float = 0.5  # the most time one frame may stand for (about 1 / sample_fps)
    update_min_delta: float = 0.1  # send an update when the score rises this much over the last event; 0 = never
    update_every_s: float = 30.0  # send an update at least this often while supported; 0 = never
    top_k: int = 5  # entries in an event's `top`
    allow: tuple[str, ...] = ()  # only these species make sightings (empty = all)
    deny: tuple[str, ...] = ()  # these species never make sightings
    thresholds: Mapping[str, float] = field(default_factory=dict)  # species -> its own enter score
    scenery: bool = True  # learn what the static scene scores and require motion to start a sighting
    motion_min: float = 0.005  # Frame.motion at or above this counts as movement
    motion_window_s: float = 5.0  # a sighting may start only this soon after a moving frame
    baseline_margin: float = 0.25  # a species must beat the static scene's score for it by this much
    baseline_s: float = 120.0  # time constant (seconds) of the static-scene baseline
    still_limit_s: float = 300.0  # a sighting with no movement this long is scenery and ends; 0 = never

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", tuple(self.allow))
        object.__setattr__(self, "deny", tuple(self.deny))
        object.__setattr__(self, "thresholds", types.MappingProxyType(dict(self.thresholds)))
        _check_unit("enter_score", self.enter_score, low_open=True)
        _check_unit("exit_score", self.exit_score)
        if self.exit_score > self.enter_score:
            raise ConfigError(
                f"sightings.exit_score: {self.exit_score} is above enter_score {self.enter_score}"
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
    return dataclasses.replace(options, allow=allow, deny=deny, thresholds=thresholds)
