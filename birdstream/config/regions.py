"""The `regions:` section (and its per-stream override): where the bird is in the frame."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from birdstream.config.base import Section


class RegionsConfig(Section):
    enabled: bool = True
    """Find moving bird-sized regions and classify each on its own crop at source resolution, beside the whole frame; false = whole frame only (as before regions)."""
    max_regions: Annotated[int, Field(ge=1, le=32)] = 4
    """Crops per frame at most, moving and largest first (motion everywhere never floods the engine)."""
    analysis_width: Annotated[int, Field(ge=64, le=1920)] = 320
    """Width in pixels of the grey picture motion is measured on."""
    pixel_delta: Annotated[int, Field(ge=1, le=255)] = 20
    """Grey-level change (of 255) that counts an analysis pixel as moving."""
    min_box_px: Annotated[int, Field(ge=1, le=4096)] = 12
    """Smallest moving box that is a region (shorter side, source pixels)."""
    max_box_fraction: Annotated[float, Field(gt=0, le=1)] = 0.25
    """Largest moving box that is a region (fraction of the picture's area); larger things are left to the whole frame."""
    max_aspect: Annotated[float, Field(ge=1, le=100)] = 5
    """A moving box longer than this many times its width (a wire, a shadow edge) is not a region."""
    everywhere: Annotated[float, Field(gt=0, le=1)] = 0.4
    """When this fraction of the picture changes at once (lights on, camera shake), recalibrate the background instead of proposing regions."""
    context: Annotated[float, Field(ge=1, le=20)] = 3
    """A crop is a square this many times the moving box's longer side (context around the bird)."""
    min_crop_px: Annotated[int, Field(ge=16, le=8192)] = 128
    """Smallest crop side in source pixels."""
