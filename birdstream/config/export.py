"""The `deployment:` and `taxonomy:` keys: facts about the cameras that Camtrap DP and eBird exports need."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field

from birdstream.config.base import Section


class PlaceConfig(Section):
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    """WGS84 decimal degrees (Camtrap DP and eBird exports need it)."""
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    """WGS84 decimal degrees (Camtrap DP and eBird exports need it)."""
    location_name: Annotated[str, Field(min_length=1)] | None = None
    """The place's name as people know it."""
    camera_model: Annotated[str, Field(min_length=1)] | None = None
    """Make and model of the camera, e.g. Reconyx-HF2X."""
    camera_height_m: Annotated[float, Field(ge=0)] | None = None
    """Height of the camera above the ground, in metres."""
    active_from: AwareDatetime | None = None
    """When the camera was set up (RFC 3339 with offset); default: the first file or sighting exported."""
    active_until: AwareDatetime | None = None
    """When the camera was taken down (RFC 3339 with offset); default: the last file or sighting exported."""
    country_code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    """ISO 3166-1 alpha-2 country code, e.g. OM (eBird export)."""
    state_province: Annotated[str, Field(min_length=1)] | None = None
    """State or province as eBird names it, e.g. OM-MA (eBird export)."""


class DeploymentConfig(PlaceConfig):
    streams: dict[str, PlaceConfig] = {}
    """Per stream id (or, for classify, per camera folder): the keys above where they differ from the station's."""
