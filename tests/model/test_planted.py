"""The planted checkpoint keeps the promises its docstring makes (other areas' tests rely on them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import birdstream
from tests.support.planted import PADDING_SPECIES, PLANTED_COLOURS, make_planted_checkpoint


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = make_planted_checkpoint(tmp_path_factory.mktemp("planted") / "planted.pt")
    net, info = birdstream.load_pretrained_model(str(path), device="cpu")
    transform = birdstream.classification_transform(birdstream.get_size_from_signature(info.signature), info.rgb_stats)
    return net, info, transform


def _frame(rng, background: str, colour=None, coverage: float = 0.06, h: int = 240, w: int = 320) -> Image.Image:
    if background == "grey":
        a = np.full((h, w, 3), int(rng.integers(40, 220)), np.uint8)
    else:
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if colour is not None:
        side = int(np.ceil(np.sqrt(coverage * h * w)))
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        a[y : y + side, x : x + side] = colour
    return Image.fromarray(a)


def test_checkpoint_is_small_and_birder_shaped(tmp_path):
    path = make_planted_checkpoint(tmp_path / "p.pt")
    assert path.stat().st_size < 1_000_000
    data = torch.load(path, weights_only=True)
    assert set(data) >= {"state", "birder_version", "task", "signature", "class_to_idx", "rgb_stats", "config"}
    assert all(float(v.abs().max()) == 0.0 for k, v in data["state"].items() if k.endswith(".gamma"))


def test_class_names_in_index_order(planted):
    _, info, _ = planted
    assert info.class_names == [*PLANTED_COLOURS, *PADDING_SPECIES]
    assert birdstream.get_size_from_signature(info.signature) == (96, 96)


@pytest.mark.parametrize("background", ["grey", "noise"])
@pytest.mark.parametrize("name", list(PLANTED_COLOURS))
def test_coloured_object_wins(planted, background, name):
    net, info, transform = planted
    rng = np.random.default_rng(hash((background, name)) % 2**32)
    out, _ = birdstream.infer_image(net, _frame(rng, background, PLANTED_COLOURS[name], 0.06), transform)
    k = info.class_names.index(name)
    assert int(out.argmax()) == k
    assert out[0, k] >= 0.8


@pytest.mark.parametrize("background", ["grey", "noise"])
def test_empty_frame_is_nobody(planted, background):
    net, _, transform = planted
    rng = np.random.default_rng(7)
    for _ in range(5):
        out, _ = birdstream.infer_image(net, _frame(rng, background), transform)
        assert out.max() < 0.3


def test_small_object_stays_below_enter_score(planted):
    net, info, transform = planted
    rng = np.random.default_rng(3)
    for name, colour in PLANTED_COLOURS.items():
        out, _ = birdstream.infer_image(net, _frame(rng, "grey", colour, 0.02), transform)
        assert out[0, info.class_names.index(name)] < 0.6


def test_blocks_are_identity(planted):
    net, _, _ = planted
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        feats = net.detection_features(x)
        tokens = net.conv_proj(x).flatten(2).transpose(1, 2) + net.pos_embedding
    assert torch.equal(feats["stage1"].flatten(2).transpose(1, 2), tokens)
