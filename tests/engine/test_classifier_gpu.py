"""The classifier on a CUDA device: launched batches overlap, inference runs on its own stream, the
two pinned host buffers take turns, and the engine delivers the same answers as the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birdstream.engine import Engine
from birdstream.engine.classifier import Classifier
from birdstream.messages import Frame
from tests.engine.conftest import Collector, planted_image

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")

COLOURS = [(230, 30, 30), (30, 200, 40), (30, 40, 220), None]


@pytest.fixture(scope="module")
def gpu_classifier(planted_path) -> Classifier:
    clf = Classifier.load(planted_path, device="cuda", precision="fp32", max_batch=8)
    clf.warm_up(4)
    return clf


def _frames(clf: Classifier, n: int, seed: int = 0) -> np.ndarray:
    return np.stack([planted_image(COLOURS[i % 4], clf.input_size, seed=seed + i) for i in range(n)])


def test_inference_runs_on_a_stream_of_its_own(gpu_classifier) -> None:
    stream = gpu_classifier.stream
    assert stream is not None and stream != torch.cuda.default_stream(gpu_classifier.device)


def test_two_launches_in_flight_each_get_their_own_answers(gpu_classifier, planted_classifier) -> None:
    a, b = _frames(gpu_classifier, 6, seed=0), _frames(gpu_classifier, 6, seed=100)
    expected_a, expected_b = planted_classifier(a), planted_classifier(b)
    host_a = gpu_classifier.host_buffer(6)
    host_a[...] = a
    first = gpu_classifier.submit(host_a)  # reads the pinned buffer asynchronously
    host_b = gpu_classifier.host_buffer(6)  # the other buffer: stacking here cannot disturb the first copy
    assert host_b.__array_interface__["data"][0] != host_a.__array_interface__["data"][0]
    host_b[...] = b
    second = gpu_classifier.submit(host_b)
    got_a, got_b = first.result(), second.result()
    # TF32 convolutions (cuDNN's default) round the patch embedding: close, same answers.
    np.testing.assert_allclose(got_a, expected_a, atol=5e-3)
    np.testing.assert_allclose(got_b, expected_b, atol=5e-3)
    assert (got_a.argmax(1) == expected_a.argmax(1)).all() and (got_b.argmax(1) == expected_b.argmax(1)).all()
    assert second.ready


def test_engine_on_the_gpu_gives_the_cpu_answers_in_order(gpu_classifier, planted_classifier) -> None:
    collector = Collector()
    engine = Engine(gpu_classifier, max_batch=8, max_wait_ms=5, max_age_s=60, on_predictions=collector)
    frames = _frames(gpu_classifier, 40, seed=7)
    boxes = [engine.mailbox(f"g{i}", blocking=True) for i in range(4)]
    engine.start()
    try:
        for seq in range(10):
            for i, box in enumerate(boxes):
                assert box.put(Frame(f"g{i}", seq, frames[seq * 4 + i], captured_at=0.0))
        assert collector.wait_for(40, timeout=60)
    finally:
        engine.stop()
        assert engine.join(30)
    assert engine.error is None
    expected = planted_classifier(frames)
    for p in collector.predictions:
        np.testing.assert_allclose(p.probs, expected[p.frame.seq * 4 + int(p.frame.stream_id[1:])], atol=5e-3)
    for i in range(4):
        assert [p.frame.seq for p in collector.predictions if p.frame.stream_id == f"g{i}"] == list(range(10))
