"""Birder's classification preprocessing, without torchvision: RGB, squash-resize (PIL bicubic), /255, normalise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image


class ClassificationTransform:
    """PIL image -> float32 tensor [3, H, W], exactly as Birder's ``inference_preset``."""

    def __init__(self, size: tuple[int, int], rgb_stats: dict[str, Any], center_crop: float = 1.0) -> None:
        if not 0.0 < center_crop <= 1.0:
            raise ValueError(f"center_crop must be in (0, 1], got {center_crop}")
        self.size = (int(size[0]), int(size[1]))
        self.base_size = (int(self.size[0] / center_crop), int(self.size[1] / center_crop))
        self.mean = torch.tensor(rgb_stats["mean"], dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(rgb_stats["std"], dtype=torch.float32).view(3, 1, 1)

    def resize(self, image: Image.Image) -> Image.Image:
        """RGB, squash to the base size with PIL bicubic (which antialiases), then centre crop to the model size."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        bh, bw = self.base_size
        if image.size != (bw, bh):
            image = image.resize((bw, bh), Image.BICUBIC)
        h, w = self.size
        if (bh, bw) != (h, w):
            top = int(round((bh - h) / 2.0))
            left = int(round((bw - w) / 2.0))
            image = image.crop((left, top, left + w, top + h))
        return image

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [..., 3, H, W] -> normalised float32 (same op order as torchvision: *1/255, -mean, /std)."""
        x = x.to(torch.float32).mul_(1.0 / 255)
        return x.sub_(self.mean.to(x.device)).div_(self.std.to(x.device))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        arr = np.asarray(self.resize(image), dtype=np.uint8)
        return self.normalize(torch.from_numpy(arr.copy()).permute(2, 0, 1))


def classification_transform(
    size: tuple[int, int], rgb_stats: dict[str, Any], center_crop: float = 1.0
) -> Callable[[Image.Image], torch.Tensor]:
    """The inference transform for a model of input ``size`` (h, w) trained with ``rgb_stats``."""
    return ClassificationTransform(size, rgb_stats, center_crop)
