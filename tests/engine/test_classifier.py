"""Classifier: the real loader and network, normalisation on device, parity with infer_image."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import birdstream
from birdstream.engine import Engine
from birdstream.engine.classifier import Classifier
from birdstream.errors import CheckpointError, ConfigError
from tests.engine.conftest import Collector, planted_image
from tests.support.planted import PLANTED_COLOURS


def test_attributes_come_from_the_checkpoint(planted_classifier, planted_path) -> None:
    clf = planted_classifier
    assert clf.input_size == (96, 96)
    assert clf.class_names[: len(PLANTED_COLOURS)] == list(PLANTED_COLOURS)
    assert re.fullmatch(r"planted@[0-9a-f]{12}", clf.model_id)
    import hashlib

    assert clf.model_id.endswith(hashlib.sha256(planted_path.read_bytes()).hexdigest()[:12])
    assert clf.device == torch.device("cpu")
    assert clf.dtype == torch.float32  # auto on cpu is fp32 too


def test_matches_infer_image_on_the_same_model_size_image(planted_classifier, planted_path) -> None:
    net, info = birdstream.load_pretrained_model(planted_path, inference=True)
    size = birdstream.get_size_from_signature(info.signature)
    transform = birdstream.classification_transform(size, info.rgb_stats)
    colours = [None, *PLANTED_COLOURS.values()]
    images = np.stack([planted_image(c, size, seed=i) for i, c in enumerate(colours)])
    ours = planted_classifier(images)
    assert ours.dtype == np.float32 and ours.shape == (len(colours), len(info.class_names))
    for i, img in enumerate(images):
        ref, _ = birdstream.infer_image(net, Image.fromarray(img), transform)
        np.testing.assert_allclose(ours[i], ref[0], rtol=0, atol=2e-6)


def test_planted_colours_win(planted_classifier) -> None:
    size = planted_classifier.input_size
    names = list(PLANTED_COLOURS)
    images = np.stack([planted_image(PLANTED_COLOURS[n], size, seed=7 + i) for i, n in enumerate(names)])
    probs = planted_classifier(images)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    for i, name in enumerate(names):
        assert planted_classifier.class_names[int(probs[i].argmax())] == name
        assert probs[i].max() >= 0.8


def test_a_batch_equals_single_frames(planted_classifier) -> None:
    size = planted_classifier.input_size
    images = np.stack([planted_image(c, size, seed=i) for i, c in enumerate(PLANTED_COLOURS.values())])
    batched = planted_classifier(images)
    single = np.concatenate([planted_classifier(images[i : i + 1]) for i in range(len(images))])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    # Frames stacked straight into the classifier's host buffer give the same answer.
    buf = planted_classifier.host_buffer(len(images))
    buf[...] = images
    np.testing.assert_allclose(planted_classifier(buf), batched, atol=1e-6)


def test_bf16_on_cpu_agrees_on_the_class(planted_path, planted_classifier) -> None:
    clf = Classifier.load(planted_path, device="cpu", precision="bf16")
    assert clf.dtype == torch.bfloat16
    images = np.stack(
        [planted_image(c, clf.input_size, seed=20 + i) for i, c in enumerate(PLANTED_COLOURS.values())]
    )
    low = clf(images)
    assert low.dtype == np.float32
    assert (low.argmax(axis=1) == planted_classifier(images).argmax(axis=1)).all()
    clf.warm_up(2)


def test_rejects_frames_of_the_wrong_shape(planted_classifier) -> None:
    with pytest.raises(ValueError, match=r"uint8 \[N, 96, 96, 3\]"):
        planted_classifier(np.zeros((1, 64, 64, 3), np.uint8))
    assert planted_classifier(np.zeros((0, 96, 96, 3), np.uint8)).shape == (0, 12)


@pytest.mark.parametrize(
    ("device", "precision", "match"),
    [
        ("tpu", "auto", "model.device"),
        ("cuda:7" if torch.cuda.is_available() else "cuda", "auto", "model.device"),
        ("cpu", "fp8", "model.precision"),
    ],
)
def test_bad_device_or_precision_is_a_config_error(planted_path, device, precision, match) -> None:
    with pytest.raises(ConfigError, match=match):
        Classifier.load(planted_path, device=device, precision=precision)


def test_missing_weights_name_the_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="nothing.pt"):
        Classifier.load(tmp_path / "nothing.pt", device="cpu")


def test_engine_with_the_planted_model_names_each_streams_bird(planted_classifier) -> None:
    collector = Collector()
    engine = Engine(planted_classifier, max_batch=4, max_wait_ms=20, max_age_s=60, on_predictions=collector)
    engine.start()
    try:
        names = list(PLANTED_COLOURS)
        from birdstream.messages import Frame

        for seq in range(2):
            for i, name in enumerate(names):
                img = planted_image(PLANTED_COLOURS[name], planted_classifier.input_size, seed=100 * seq + i)
                engine.mailbox(f"cl-{i}").put(Frame(stream_id=f"cl-{i}", seq=seq, image=img, captured_at=0.0))
        assert collector.wait_for(2 * len(names))
    finally:
        engine.stop()
        assert engine.join(10)
    for p in collector.predictions:
        i = int(p.frame.stream_id.split("-")[1])
        assert planted_classifier.class_names[int(p.probs.argmax())] == names[i]
        assert p.probs.max() >= 0.8


def test_speed_options_shrink_the_input_and_quantize(planted_path) -> None:
    from birdstream.model.speed import SpeedOptions

    fast = Classifier.load(planted_path, "cpu", "fp32", speed=SpeedOptions(quantize="int8", input_size=64), max_batch=4)
    assert fast.input_size == (64, 64)
    assert fast.net.quantized
    names = list(PLANTED_COLOURS)
    images = np.stack([planted_image(PLANTED_COLOURS[n], fast.input_size, seed=3 + i) for i, n in enumerate(names)])
    probs = fast(images)
    assert [fast.class_names[int(p.argmax())] for p in probs] == names
    with pytest.raises(ValueError, match="64, 64"):
        fast(np.zeros((1, 96, 96, 3), np.uint8))  # frames must come at the shrunken size
