"""Outputs match Birder 0.8.4's own implementation (fixtures made by make_fixtures.py with birder itself)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import birdstream
from birdstream.model.checkpoint import read_checkpoint

FIX = Path(__file__).resolve().parent / "fixtures"
CKPT = FIX / "tiny_vit_parallel.pt"


def test_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


test_input.__test__ = False  # a helper shared with make_fixtures.py, not a test


def _load(**kw):
    return birdstream.load_pretrained_model(CKPT, device="cpu", **kw)


@pytest.fixture(scope="module", params=[False, True], ids=["reference", "fused"])
def net(request):
    return _load(fuse=request.param)[0]


def test_checkpoint_metadata():
    ckpt = read_checkpoint(CKPT)
    assert ckpt.birder_version == "v0.8.4"
    assert ckpt.config == {"num_layers": 2, "hidden_dim": 48, "num_heads": 4, "mlp_dim": 96}
    _, info = _load()
    assert birdstream.get_size_from_signature(info.signature) == (64, 96)
    assert info.class_names == [f"species_{i:02d}" for i in range(10)]


def test_logits(net):
    x = torch.from_numpy(test_input((3, 3, 64, 96), seed=99))
    with torch.inference_mode():
        got = net(x).numpy()
    np.testing.assert_allclose(got, np.load(FIX / "logits.npy"), atol=5e-6, rtol=0)


def test_embedding(net):
    x = torch.from_numpy(test_input((3, 3, 64, 96), seed=99))
    with torch.inference_mode():
        got = net.embedding(x).numpy()
    np.testing.assert_allclose(got, np.load(FIX / "embedding.npy"), atol=2e-6, rtol=0)


def test_detection_features(net):
    x = torch.from_numpy(test_input((3, 3, 64, 96), seed=99))
    with torch.inference_mode():
        feats = net.detection_features(x)
    np.testing.assert_allclose(feats["stage1"].numpy(), np.load(FIX / "stage1.npy"), atol=3e-5, rtol=0)
    tokens = np.load(FIX / "tokens.npy")  # Birder's final-normed tokens [B, N, D]
    neck = feats["neck"].flatten(2).transpose(1, 2).numpy()
    np.testing.assert_allclose(neck, tokens, atol=3e-5, rtol=0)
    assert feats["neck"].shape == (3, 48, 4, 6)


def test_dynamic_size_interpolates_position_embedding():
    net, _ = _load(dynamic_size=True)
    x = torch.from_numpy(test_input((2, 3, 80, 112), seed=100))
    with torch.inference_mode():
        got = net(x).numpy()
    np.testing.assert_allclose(got, np.load(FIX / "logits_dynamic.npy"), atol=5e-6, rtol=0)


def test_tta(net):
    x = torch.from_numpy(test_input((3, 3, 64, 96), seed=99))
    probs, _ = birdstream.infer_batch(net, x, tta=True)
    np.testing.assert_allclose(probs, np.load(FIX / "tta_probs.npy"), atol=2e-6, rtol=0)


@pytest.mark.parametrize("ext", ["png", "jpeg"])
def test_transform_and_infer_image_on_real_files(net, ext):
    _, info = _load()
    transform = birdstream.classification_transform(birdstream.get_size_from_signature(info.signature), info.rgb_stats)
    path = FIX / f"bird.{ext}"
    np.testing.assert_allclose(
        transform(Image.open(path)).numpy(), np.load(FIX / f"{ext}_transformed.npy"), atol=1e-6, rtol=0
    )
    probs, emb = birdstream.infer_image(net, str(path), transform, return_embedding=True)
    assert probs.dtype == np.float32 and emb.dtype == np.float32
    np.testing.assert_allclose(probs, np.load(FIX / f"{ext}_probs.npy"), atol=2e-6, rtol=0)
    np.testing.assert_allclose(emb, np.load(FIX / f"{ext}_embedding.npy"), atol=2e-6, rtol=0)


def test_plain_load_state_dict_of_birder_file():
    from birdstream.model.vit_parallel import VIT_PARALLEL_S16_18X2_LS_AVG, ViTParallel, ViTParallelConfig

    cfg = ViTParallelConfig.from_birder({**VIT_PARALLEL_S16_18X2_LS_AVG, "num_layers": 2, "hidden_dim": 48,
                                         "num_heads": 4, "mlp_dim": 96})
    net = ViTParallel(10, (64, 96), cfg).eval()
    net.load_state_dict(torch.load(CKPT, weights_only=True)["state"])
    x = torch.from_numpy(test_input((3, 3, 64, 96), seed=99))
    with torch.inference_mode():
        np.testing.assert_allclose(net(x).numpy(), np.load(FIX / "logits.npy"), atol=5e-6, rtol=0)
