"""A "planted" Birder checkpoint whose predicted class follows the colour of an object in the frame.

It is a real Birder-format ``.pt`` (same loader, same forward as the shipped model), small and
fast: input 96x96 (from the signature), hidden dim 32, one parallel block (from ``config``). Its
LayerScale gammas are 0, so every block is the identity; the patch embedding, final norm and head
are set by hand:

- rgb_stats are mean 0.5 / std 0.5, so the network sees ``2 * colour - 1``;
- the patch embedding measures, per patch, the mean chroma (colour minus its grey level) projected
  on each planted colour's chroma direction; two constant anchor channels (+C, -C) keep every
  token's LayerNorm scale nearly constant, so the final norm stays close to linear;
- mean pooling then gives the frame-average chroma projection, and the head turns it into logits:
  class ``k`` gets ``SCALE * coverage * <chroma(object), unit chroma direction k>``; the padding
  species (which never win) get logit 0.

Documented thresholds (checked by tests/model/test_planted.py), for 96x96 model input, i.e. after
the squash resize of whatever frame size you use:

- an object of colour ``PLANTED_COLOURS[k]`` covering >= 6% of the frame, on a uniform grey or a
  per-pixel random-noise background: probability of class ``k`` >= 0.8 (and it is the top class);
- a frame without a coloured object (uniform grey of any level, or per-pixel uniform noise):
  every class < 0.3 (it is close to uniform, 1/12 each);
- coverage of 2% or less stays below the 0.6 default ``enter_score``
  (a rough guide: use >= 6% when you need a sighting, nothing coloured when you need none).

The five colours are saturated hues 72 degrees apart, so video chroma subsampling and compression
do not confuse them. Noise must be per-pixel (spatially correlated blotches of colour are, by
construction, coloured objects).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

PLANTED_COLOURS: dict[str, tuple[int, int, int]] = {
    "Scarlet Tanager": (255, 0, 0),
    "Eurasian Golden Oriole": (204, 255, 0),
    "Green Bee-eater": (0, 255, 102),
    "Indian Roller": (0, 102, 255),
    "Purple Sunbird": (204, 0, 255),
}
"""Class name -> the RGB colour that makes the planted model predict it."""

PADDING_SPECIES: tuple[str, ...] = (
    "House Sparrow",
    "Laughing Dove",
    "White-eared Bulbul",
    "Common Myna",
    "Hooded Crow",
    "Rock Dove",
    "Desert Lark",
)
"""Extra classes that never win: they keep an empty frame's probabilities low."""

PLANTED_SIZE = (96, 96)
PLANTED_CONFIG = {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "mlp_dim": 64, "patch_size": 16}
PLANTED_RGB_STATS = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}

_ANCHOR = 8.0
# Logit of the matching class for a fully saturated object covering 6% of the frame is about 6.
_SCALE = 6.0 / (0.06 * 0.77)


def planted_class_names() -> list[str]:
    return [*PLANTED_COLOURS, *PADDING_SPECIES]


def _chroma(rgb: tuple[int, int, int]) -> torch.Tensor:
    c = torch.tensor(rgb, dtype=torch.float64) / 255.0
    return c - c.mean()


def _birder_state(size: tuple[int, int], num_classes: int) -> dict[str, torch.Tensor]:
    """A state dict in Birder's layout (keys and shapes), built without importing birdstream's network."""
    cfg = PLANTED_CONFIG
    d, p, m = cfg["hidden_dim"], cfg["patch_size"], cfg["mlp_dim"]
    gen = torch.Generator().manual_seed(0)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * 0.02

    seq = (size[0] // p) * (size[1] // p)
    state: dict[str, torch.Tensor] = {
        "conv_proj.weight": torch.zeros(d, 3, p, p),
        "conv_proj.bias": torch.zeros(d),
        "pos_embedding": torch.zeros(1, seq, d),
    }
    for i in range(cfg["num_layers"]):
        for j in range(2):
            a = f"encoder.block.{i}.attn_blocks.{j}"
            state |= {
                f"{a}.0.weight": torch.ones(d), f"{a}.0.bias": torch.zeros(d),
                f"{a}.1.qkv.weight": rnd(3 * d, d), f"{a}.1.qkv.bias": torch.zeros(3 * d),
                f"{a}.1.proj.weight": rnd(d, d), f"{a}.1.proj.bias": torch.zeros(d),
                f"{a}.2.gamma": torch.zeros(d),
            }
            f = f"encoder.block.{i}.mlp_blocks.{j}"
            state |= {
                f"{f}.0.weight": torch.ones(d), f"{f}.0.bias": torch.zeros(d),
                f"{f}.1.0.weight": rnd(m, d), f"{f}.1.0.bias": torch.zeros(m),
                f"{f}.1.3.weight": rnd(d, m), f"{f}.1.3.bias": torch.zeros(d),
                f"{f}.2.gamma": torch.zeros(d),
            }
    state["norm.weight"] = torch.ones(d)
    state["norm.bias"] = torch.zeros(d)

    # Patch embedding: anchors in channels 0/1, +-projection of colour k in channels 2+2k / 3+2k.
    state["conv_proj.bias"][0] = _ANCHOR
    state["conv_proj.bias"][1] = -_ANCHOR
    head_w = torch.zeros(num_classes, d)
    # The network sees 2*c-1; chroma of that is 2*chroma(c), hence the 0.5.
    per_pixel = 0.5 / (p * p)
    n_feat = 2 + 2 * len(PLANTED_COLOURS)
    # LayerNorm std of a token is ~ sqrt(2 * C^2 / d) (anchors dominate); undo it in the head.
    sigma = math.sqrt(2 * _ANCHOR**2 / d)
    assert n_feat <= d
    for k, rgb in enumerate(PLANTED_COLOURS.values()):
        direction = _chroma(rgb)
        direction = direction / direction.norm()
        w = (direction * per_pixel).float().view(3, 1, 1).expand(3, p, p)
        state["conv_proj.weight"][2 + 2 * k] = w
        state["conv_proj.weight"][3 + 2 * k] = -w
        head_w[k, 2 + 2 * k] = _SCALE * sigma / 2
        head_w[k, 3 + 2 * k] = -_SCALE * sigma / 2
    state["classifier.weight"] = head_w
    state["classifier.bias"] = torch.zeros(num_classes)
    return {k: v.contiguous().clone() for k, v in state.items()}


def make_planted_checkpoint(
    path: str | Path,
    *,
    size: tuple[int, int] = PLANTED_SIZE,
) -> Path:
    """Write the planted Birder checkpoint to ``path`` and return it; size must be a multiple of 16."""
    path = Path(path)
    names = planted_class_names()
    data = {
        "state": _birder_state(size, len(names)),
        "birder_version": "v0.8.4",
        "task": "image_classification",
        "signature": {
            "inputs": [{"data_shape": [0, 3, size[0], size[1]]}],
            "outputs": [{"data_shape": [0, len(names)]}],
        },
        "class_to_idx": {name: i for i, name in enumerate(names)},
        "rgb_stats": {"mean": PLANTED_RGB_STATS["mean"], "std": PLANTED_RGB_STATS["std"]},
        "config": dict(PLANTED_CONFIG),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path
