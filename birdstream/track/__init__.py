"""Smoothing and the sighting state machine: predictions in, sighting events out (pure code)."""

from birdstream.track.options import TrackOptions, check_species, resolve_species
from birdstream.track.stills import StillsTracker
from birdstream.track.tracker import SightingTracker

__all__ = ["SightingTracker", "StillsTracker", "TrackOptions", "check_species", "resolve_species"]
