"""Regenerate the Birder parity fixtures in tests/model/fixtures/ with Birder's own code.

NOT run by CI and not a project dependency: run it by hand in a throwaway environment that has
``birder==0.8.4`` (and its torch/torchvision), with the repository on PYTHONPATH only for nothing
(this script imports birder, never birdstream)::

    /path/to/birder-venv/bin/python tests/model/make_fixtures.py

It builds a small ``vit_parallel_s16_18x2_ls_avg`` (2 layers, hidden 48, 4 heads, mlp 96,
non-square 64x96 input) with random weights, non-trivial LayerScale gammas and head, saves it with
Birder's checkpoint writer (``fs_ops.checkpoint_model``, which stores the custom config), and
records Birder's outputs as .npy (inputs come from ``test_input``, seeded): logits, embedding, detection features, the final-normed tokens,
dynamic-size logits, test-time-augmented probabilities, and ``infer_image`` on a real PNG and JPEG
(written here too) together with Birder's transform output for them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import birder
from birder.common import fs_ops
from birder.inference.classification import infer_batch, infer_image
from birder.model_registry import registry
from birder.net.base import get_signature

OUT = Path(__file__).resolve().parent / "fixtures"
NETWORK = "vit_parallel_s16_18x2_ls_avg"
CONFIG = {"num_layers": 2, "hidden_dim": 48, "num_heads": 4, "mlp_dim": 96}
SIZE = (64, 96)
CLASSES = [f"species_{i:02d}" for i in range(10)]
RGB_STATS = {"mean": (0.5191, 0.5306, 0.4877), "std": (0.2316, 0.2304, 0.2588)}


def test_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Inputs are regenerated from a seed (numpy's PCG64 normals are stable), not stored."""
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _is_norm(net: torch.nn.Module, name: str) -> bool:
    return isinstance(net.get_submodule(name.rsplit(".", 1)[0]), torch.nn.LayerNorm) if "." in name else False


def _make_net() -> torch.nn.Module:
    torch.manual_seed(1234)
    net = registry.net_factory(NETWORK, len(CLASSES), 3, config=CONFIG, size=SIZE)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1.0 + 0.2 * torch.randn_like(module.weight))
                module.bias.copy_(0.1 * torch.randn_like(module.bias))
        for name, p in net.named_parameters():
            if name.endswith(".gamma"):
                p.copy_(torch.rand_like(p) * 0.8 + 0.1)
            elif not _is_norm(net, name):
                p.copy_(torch.randn_like(p) * 0.15)
    return net.eval()


def _images(out: Path) -> list[Path]:
    rng = np.random.default_rng(5)
    paths = []
    for ext, size in (("png", (150, 110)), ("jpeg", (97, 131))):
        base = (rng.random((size[1], size[0], 3)) * 80 + 90).astype(np.uint8)
        im = Image.fromarray(base)
        draw = ImageDraw.Draw(im)
        draw.ellipse((20, 15, 80, 70), fill=(200, 40, 30))
        draw.rectangle((50, 60, 90, 100), fill=(30, 160, 60))
        path = out / f"bird.{ext}"
        im.save(path, quality=90) if ext == "jpeg" else im.save(path)
        paths.append(path)
    return paths


def main() -> None:
    OUT.mkdir(exist_ok=True)
    net = _make_net()
    signature = get_signature((1, 3, *SIZE), len(CLASSES))
    class_to_idx = {name: i for i, name in enumerate(CLASSES)}
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            fs_ops.model_path("x").parent.mkdir(parents=True, exist_ok=True)
            fs_ops.checkpoint_model(
                "tiny_vit_parallel", 0, net, signature, class_to_idx, RGB_STATS, None, None, None, None,
                external_config=CONFIG,
            )
            src = fs_ops.model_path("tiny_vit_parallel", epoch=0)
            shutil.copy(src, OUT / "tiny_vit_parallel.pt")
        finally:
            os.chdir(cwd)

    # Reload through Birder's own loader so the fixtures describe what Birder gets from the file.
    net, info = fs_ops.load_model(
        torch.device("cpu"), NETWORK, path=OUT / "tiny_vit_parallel.pt", inference=True
    )
    x = torch.from_numpy(test_input((3, 3, *SIZE), seed=99))
    with torch.inference_mode():
        np.save(OUT / "logits.npy", net(x).numpy())
        np.save(OUT / "embedding.npy", net.embedding(x).numpy())
        np.save(OUT / "stage1.npy", net.detection_features(x)["stage1"].numpy())
        np.save(OUT / "tokens.npy", net.forward_features(x).numpy())
        probs_tta, _ = infer_batch(net, x, tta=True)
        np.save(OUT / "tta_probs.npy", probs_tta)
        net.set_dynamic_size(True)
        xd = torch.from_numpy(test_input((2, 3, 80, 112), seed=100))
        np.save(OUT / "logits_dynamic.npy", net(xd).numpy())
        net.set_dynamic_size(False)

    transform = birder.classification_transform(SIZE, info.rgb_stats)
    for path in _images(OUT):
        image = Image.open(path)
        np.save(OUT / f"{path.suffix[1:]}_transformed.npy", transform(image).numpy())
        probs, emb = infer_image(net, str(path), transform, return_embedding=True)
        np.save(OUT / f"{path.suffix[1:]}_probs.npy", probs)
        np.save(OUT / f"{path.suffix[1:]}_embedding.npy", emb)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total} bytes, birder {birder.__version__})")


if __name__ == "__main__":
    main()
