"""The seed API end to end on a real (planted) Birder-format checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import birdstream
from tests.support.planted import PLANTED_COLOURS, make_planted_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_planted_checkpoint(tmp_path_factory.mktemp("basic") / "planted.pt")


def test_seed_usage(ckpt):
    net, info = birdstream.load_pretrained_model(str(ckpt), inference=True)
    size = birdstream.get_size_from_signature(info.signature)
    transform = birdstream.classification_transform(size, info.rgb_stats)
    image = Image.new("RGB", (200, 150), PLANTED_COLOURS["Green Bee-eater"])
    out, embedding = birdstream.infer_image(net, image, transform, return_embedding=True)
    assert out.dtype == np.float32 and out.shape == (1, len(info.class_to_idx))
    assert embedding is not None and embedding.dtype == np.float32 and embedding.shape == (1, 32)
    assert out.sum() == pytest.approx(1.0, abs=1e-5)
    assert info.class_names[int(out.argmax())] == "Green Bee-eater"
    out2, emb2 = birdstream.infer_image(net, image, transform)
    assert emb2 is None
    np.testing.assert_allclose(out2, out, atol=1e-6)
    feats = net.detection_features(transform(image).unsqueeze(0))
    assert set(feats) == {"neck", "stage1"}
    assert feats["neck"].shape == feats["stage1"].shape == (1, 32, 6, 6)


def test_model_info_identity(ckpt):
    import hashlib

    _, info = birdstream.load_pretrained_model(ckpt)
    assert info.sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert info.name == "planted"
    assert info.model_id == f"planted@{info.sha256[:12]}"
    assert info.device == torch.device("cpu")
    assert info.class_names[0] == "Scarlet Tanager"


def test_state_dict_is_birder_layout(ckpt):
    net, _ = birdstream.load_pretrained_model(ckpt)
    state = torch.load(ckpt, weights_only=True)["state"]
    assert sorted(net.state_dict()) == sorted(state)
    net.load_state_dict(state)
    assert "encoder.block.0.attn_blocks.1.1.qkv.weight" in state
    assert "encoder.block.0.mlp_blocks.0.1.3.weight" in state


def test_infer_batch_matches_infer_image(ckpt):
    net, info = birdstream.load_pretrained_model(ckpt)
    transform = birdstream.classification_transform((96, 96), info.rgb_stats)
    images = [Image.new("RGB", (96, 96), c) for c in PLANTED_COLOURS.values()]
    batch = torch.stack([transform(im) for im in images])
    out, _ = birdstream.infer_batch(net, batch)
    for i, im in enumerate(images):
        single, _ = birdstream.infer_image(net, im, transform)
        np.testing.assert_allclose(out[i], single[0], atol=1e-6)


def test_fused_equals_reference(ckpt):
    net_f, _ = birdstream.load_pretrained_model(ckpt, fuse=True)
    net_r, _ = birdstream.load_pretrained_model(ckpt, fuse=False)
    assert net_f.fused and not net_r.fused
    x = torch.randn(3, 3, 96, 96)
    with torch.inference_mode():
        torch.testing.assert_close(net_f(x), net_r(x), atol=1e-6, rtol=0)


def test_wrong_input_size_is_refused_unless_dynamic(ckpt):
    net, _ = birdstream.load_pretrained_model(ckpt)
    with pytest.raises(ValueError, match="takes 96x96"):
        net(torch.zeros(1, 3, 128, 128))
    net_d, _ = birdstream.load_pretrained_model(ckpt, dynamic_size=True)
    with torch.inference_mode():
        assert net_d(torch.zeros(1, 3, 128, 160)).shape == (1, 12)


def test_grayscale_and_rgba_images_are_converted(ckpt):
    net, info = birdstream.load_pretrained_model(ckpt)
    transform = birdstream.classification_transform((96, 96), info.rgb_stats)
    for mode in ("L", "RGBA", "P"):
        out, _ = birdstream.infer_image(net, Image.new(mode, (50, 40)), transform)
        assert out.shape == (1, 12)


def test_unreadable_image_path(tmp_path, ckpt):
    from birdstream.errors import SourceError

    net, info = birdstream.load_pretrained_model(ckpt)
    transform = birdstream.classification_transform((96, 96), info.rgb_stats)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(SourceError, match="broken.jpg: cannot read image"):
        birdstream.infer_image(net, bad, transform)


SEED_USAGE = '''
import birdstream
from birdstream import infer_image
from PIL import Image

(net, model_info) = birdstream.load_pretrained_model(WEIGHTS, inference=True)
size = birdstream.get_size_from_signature(model_info.signature)
transform = birdstream.classification_transform(size, model_info.rgb_stats)
image = IMAGE_PATH
(out, _) = infer_image(net, image, transform)
assert out.shape == (1, len(model_info.class_to_idx))
(out, embedding) = infer_image(net, image, transform, return_embedding=True)
assert embedding.shape[0] == 1 and embedding.dtype.name == "float32"
image = Image.open(IMAGE_PATH)
features = net.detection_features(transform(image).unsqueeze(0))
print([(k, tuple(v.size())) for k, v in features.items()])
print(model_info.class_names[int(out.argmax())])
'''


def test_the_model_card_examples_run_with_birdstream(ckpt, tmp_path):
    """The model card's three usage examples, with `birder` replaced by `birdstream`, in a fresh interpreter."""
    import subprocess
    import sys

    from tests.support.cli import birdstream_env

    picture = tmp_path / "bird.jpeg"
    image = Image.new("RGB", (320, 240), (128, 128, 128))
    image.paste(PLANTED_COLOURS["Indian Roller"], (100, 60, 220, 180))
    image.save(picture)
    script = f"WEIGHTS = {str(ckpt)!r}\nIMAGE_PATH = {str(picture)!r}\n" + SEED_USAGE
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env=birdstream_env())
    assert result.returncode == 0, result.stderr
    features, species = result.stdout.strip().splitlines()
    assert features == "[('neck', (1, 32, 6, 6)), ('stage1', (1, 32, 6, 6))]"
    assert species == "Indian Roller"
