"""Stand-ins for benches and tests when no real checkpoint is at hand: a seeded random network with
non-trivial LayerScale and head, natural-looking images, and agreement measures between two runs.

Needs only torch and numpy (the GPU bench imports it on a bare machine).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from birdstream.model.vit_parallel import VIT_PARALLEL_S16_18X2_LS_AVG, ViTParallel, ViTParallelConfig

# The published model's RGB statistics (ImageNet's), so inputs are normalised as in service.
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)


def random_network(
    num_classes: int = 735,
    size: tuple[int, int] = (384, 384),
    config: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    head_std: float = 0.05,
) -> ViTParallel:
    """The full ``vit_parallel_s16_18x2_ls_avg`` (or ``config`` merged over it), seeded random weights, eval mode.

    LayerScale gammas are drawn from U(0.05, 0.5) (not Birder's 1e-5 init) so every branch of every
    block shapes the output, and LayerNorm affines are perturbed so the fused folding is exercised.
    """
    merged = {**VIT_PARALLEL_S16_18X2_LS_AVG, **(config or {})}
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = ViTParallel(num_classes, size, ViTParallelConfig.from_birder(merged))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(".gamma"):
                p.copy_(torch.rand(p.shape, generator=gen) * 0.45 + 0.05)
            elif name.startswith("classifier."):
                p.copy_(torch.randn(p.shape, generator=gen) * head_std)
            elif p.ndim == 1 and ".0.weight" in name:  # LayerNorm scales
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1 and ".0.bias" in name:  # LayerNorm shifts
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return net.eval().requires_grad_(False)


def natural_images(n: int, size: tuple[int, int], seed: int = 0) -> npt.NDArray[np.uint8]:
    """uint8 [n, H, W, 3]: 1/f noise backgrounds (natural images' spectrum) with a few soft coloured blobs."""
    rng = np.random.default_rng(seed)
    h, w = size
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    envelope = 1.0 / radius**1.1
    envelope[0, 0] = 0.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        base = np.empty((h, w, 3), np.float32)
        for c in range(3):
            spec = envelope * (rng.normal(size=envelope.shape) + 1j * rng.normal(size=envelope.shape))
            field = np.fft.irfft2(spec, s=(h, w)).astype(np.float32)
            base[..., c] = field / (field.std() + 1e-8)
        # Correlate the channels like real scenery (mostly luminance, some tint).
        mix = np.eye(3, dtype=np.float32) * 0.35 + 0.65 * rng.uniform(0.7, 1.0, (3, 3)).astype(np.float32)
        img = base @ mix.T * 0.18 + rng.uniform(0.3, 0.6, 3).astype(np.float32)
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
            ry, rx = rng.uniform(0.05, 0.2) * h, rng.uniform(0.05, 0.25) * w
            mask = np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) ** 2)[..., None]
            img = img * (1 - mask) + mask * (rng.uniform(0.0, 1.0, 3).astype(np.float32) + 0.1 * base)
        out[i] = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    return out


def to_input(
    images: npt.NDArray[np.uint8], size: tuple[int, int] | None = None,
    mean: tuple[float, ...] = RGB_MEAN, std: tuple[float, ...] = RGB_STD,
) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> normalised float32 [N, 3, h, w], resized (bicubic, antialiased) to ``size`` if given."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    if size is not None and tuple(size) != tuple(x.shape[-2:]):
        x = torch.nn.functional.interpolate(x, size=tuple(size), mode="bicubic", antialias=True).clamp_(0, 255)
    m = torch.tensor(mean).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std).view(1, 3, 1, 1) * 255.0
    return (x - m) / s


def agreement(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """Compare two logit arrays [N, C]: top-1 agreement, mean top-5 overlap, max |prob diff|, relative logit error.

    ``flip_max_gap`` is the largest reference top-1/top-2 probability gap among images whose top-1
    changed (0 when none did), next to ``median_gap`` over all images: flips at near-ties only.

    ``logit_rel_err`` is RMS(logit difference) / RMS(reference logits around each row's mean): a
    perturbation size that does not depend on how confident the (random) head happens to be.
    """
    ref_l, oth_l = reference.float().cpu(), other.float().cpu()
    ref, oth = ref_l.softmax(1), oth_l.softmax(1)
    k = min(5, ref.shape[1])
    top5_ref, top5_oth = ref.topk(k, dim=1).indices, oth.topk(k, dim=1).indices
    overlap = [len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(top5_ref, top5_oth)]
    spread = (ref_l - ref_l.mean(1, keepdim=True)).pow(2).mean().sqrt()
    top2 = ref.topk(min(2, ref.shape[1]), dim=1).values
    gap = top2[:, 0] - top2[:, -1]  # the reference's top-1 minus top-2 probability, per image
    same = ref.argmax(1) == oth.argmax(1)
    return {
        "top1": float(same.float().mean()),
        "flip_max_gap": float(gap[~same].max()) if bool((~same).any()) else 0.0,
        "median_gap": float(gap.median()),
        "top5": float(np.mean(overlap)),
        "max_prob_diff": float((ref - oth).abs().max()),
        "logit_rel_err": float((ref_l - oth_l).pow(2).mean().sqrt() / spread.clamp_min(1e-12)),
        "ref_max_prob": float(ref.max(1).values.mean()),
    }
