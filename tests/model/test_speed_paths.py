"""Speed paths agree with the exact fp32 forward: fused, int8 dynamic, lower input size, batch buckets."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from birdstream.errors import ConfigError
from birdstream.model.graphs import GraphedForward, batch_buckets, bucket_for, pad_batch
from birdstream.model.quantize import quantize_int8
from birdstream.model.speed import PreparedNetwork, SpeedOptions, configure_threads, prepare_network
from birdstream.model.synthetic import agreement, natural_images, random_network, to_input

SMALL = {"num_layers": 2, "hidden_dim": 64, "num_heads": 4, "mlp_dim": 128}


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return random_network(50, (64, 64), SMALL, seed=3, head_std=0.5)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return to_input(natural_images(64, (64, 64), seed=4))


def _logits(fn, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return fn(x).float()


def test_fused_equals_birder_layout(net, images):
    fused = copy.deepcopy(net).fuse()
    with torch.inference_mode():
        torch.testing.assert_close(fused(images), net(images), atol=2e-5, rtol=1e-5)


def test_int8_agrees_with_fp32(net, images):
    ref = _logits(net, images)
    q = quantize_int8(copy.deepcopy(net).fuse())
    assert q.quantized and all(blk.int8 is not None for blk in q.encoder.block)
    got = _logits(q, images)
    a = agreement(ref, got)
    assert a["top1"] >= 0.95 and a["top5"] >= 0.95, a
    assert 0 < a["max_prob_diff"] < 0.02 and 0 < a["logit_rel_err"] < 0.02, a  # really quantized, and close
    # The measure can tell networks apart: another seed's network disagrees on most images.
    other = _logits(random_network(50, (64, 64), SMALL, seed=5, head_std=0.5), images)
    assert agreement(ref, other)["top1"] < 0.5


def test_int8_quantizes_unfused_net_and_frees_fp32_copies(net, images):
    q = quantize_int8(copy.deepcopy(net))
    assert q.fused and not any(k.startswith("f_") for k in q.encoder.block[0]._buffers)
    assert q(images[:2]).shape == (2, 50)
    with pytest.raises(RuntimeError, match="quantized"):
        q.load_state_dict(net.state_dict())
    q.unfuse()  # back to the exact Birder-layout path
    with torch.inference_mode():
        torch.testing.assert_close(q(images), net(images), atol=0, rtol=0)


def test_int8_refuses_reduced_precision(net):
    half = copy.deepcopy(net)
    half.autocast_dtype = torch.bfloat16
    with pytest.raises(ConfigError, match="model.quantize"):
        quantize_int8(half)


def test_default_options_are_bit_exact(net, images):
    fused = copy.deepcopy(net).fuse()
    with torch.inference_mode():
        expected = fused(images)
    prepared = prepare_network(fused, SpeedOptions())
    assert prepared.input_size == (64, 64) and prepared.buckets is None and prepared.describe() == "defaults"
    torch.testing.assert_close(prepared(images), expected, atol=0, rtol=0)


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_lower_input_size(net, quantize):
    raw = natural_images(3, (64, 64), seed=9)
    prepared = prepare_network(copy.deepcopy(net).fuse(), SpeedOptions(quantize=quantize, input_size=48))
    assert prepared.input_size == (48, 48)
    assert prepared.net.pos_embedding.shape == (1, 9, 64)
    small, full = to_input(raw, (48, 48)), to_input(raw)
    out = prepared(small)
    assert out.shape == (3, 50) and out.dtype is torch.float32 and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="64x64"):
        prepared(full)  # the frames must follow input_size


def test_input_size_not_a_patch_multiple(net):
    with pytest.raises(ConfigError, match="model.input_size: 40"):
        prepare_network(copy.deepcopy(net), SpeedOptions(input_size=40))


def test_gpu_only_options_are_skipped_on_cpu(net, images, caplog):
    prepared = prepare_network(copy.deepcopy(net).fuse(), SpeedOptions(cuda_graphs=True))
    assert prepared.buckets is None and "cuda_graphs" in caplog.text
    assert prepared(images[:3]).shape == (3, 50)


def test_bucketed_forward_pads_and_splits(net, images):
    fused = copy.deepcopy(net).fuse()
    with torch.inference_mode():
        expected = fused(images[:7])
    seen = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return fused(x)

    prepared = PreparedNetwork(fused, forward, torch.device("cpu"), (1, 2, 4), ["test"])
    out = prepared(images[:7])
    assert seen == [4, 4]  # 7 = 4 + 3 padded to 4
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-5)
    seen.clear()
    prepared.warmup()
    assert seen == [1, 2, 4]


def test_bucket_helpers():
    assert batch_buckets(32) == (1, 2, 4, 8, 16, 32)
    assert batch_buckets(24) == (1, 2, 4, 8, 16, 24)
    assert batch_buckets(1) == (1,)
    assert batch_buckets(1024) == (8, 16, 32, 64, 128, 256, 512, 1024)
    assert bucket_for(3, (1, 2, 4)) == 4 and bucket_for(1, (1, 2, 4)) == 1
    with pytest.raises(ValueError):
        bucket_for(5, (1, 2, 4))
    x = torch.ones(3, 2)
    padded = pad_batch(x, 4)
    assert padded.shape == (4, 2) and padded[3].abs().sum() == 0 and pad_batch(x, 3) is x


def test_cuda_graphs_need_cuda(net):
    with pytest.raises(ValueError, match="CUDA"):
        GraphedForward(net, (3, 64, 64), torch.device("cpu"), (1, 2))


def test_configure_threads():
    before = torch.get_num_threads()
    try:
        configure_threads(1)
        assert torch.get_num_threads() == 1
        configure_threads(None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_agreement_measures():
    ref = torch.tensor([[4.0, 1.0, 0.0], [1.0, 1.1, 0.0], [0.0, 0.0, 3.0]])
    same = agreement(ref, ref)
    assert same["top1"] == 1.0 and same["max_prob_diff"] == 0.0 and same["logit_rel_err"] == 0.0
    assert same["flip_max_gap"] == 0.0
    other = ref.clone()
    other[1] = torch.tensor([1.2, 1.1, 0.0])  # flip the near-tie only
    a = agreement(ref, other)
    assert a["top1"] == pytest.approx(2 / 3) and a["top5"] == 1.0
    assert 0 < a["flip_max_gap"] < a["median_gap"]


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_forward_traces_without_graph_breaks(net, images, dtype):
    # torch.compile's front end (dynamo) with the eager backend: no compiler run, seconds on a CPU.
    fused = copy.deepcopy(net)
    fused.autocast_dtype = dtype
    fused.fuse()
    with torch.inference_mode():
        expected = fused(images[:2])
        got = torch.compile(fused, fullgraph=True, dynamic=False, backend="eager")(images[:2])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_compile_option_pads_to_buckets(net, images):
    fused = copy.deepcopy(net).fuse()
    with torch.inference_mode():
        expected = fused(images[:3])
    prepared = prepare_network(fused, SpeedOptions(compile=True), max_batch=4, compile_backend="eager")
    assert prepared.buckets == (1, 2, 4) and "torch.compile" in prepared.describe()
    torch.testing.assert_close(prepared(images[:3]), expected, atol=1e-5, rtol=1e-5)


def test_compile_refuses_int8(net):
    with pytest.raises(ConfigError, match="model.compile"):
        prepare_network(copy.deepcopy(net), SpeedOptions(quantize="int8", compile=True), compile_backend="eager")


@pytest.fixture
def fresh_dynamo():
    """Compiled code is cached per function across tests: start and end without any."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class CountingBackend:
    """A torch.compile backend that counts compilations and runs the traced graph as it is."""

    def __init__(self, fail: bool = False) -> None:
        self.compiles = 0
        self.fail = fail

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list) -> object:
        self.compiles += 1
        if self.fail:
            raise RuntimeError("simulated compiler failure\nsecond line of a long compiler trace")
        return gm.forward


def test_warm_up_compiles_each_bucket_once_for_service_calls(net, images, fresh_dynamo):
    backend = CountingBackend()
    prepared = prepare_network(copy.deepcopy(net).fuse(), SpeedOptions(compile=True), max_batch=4,
                               compile_backend=backend)
    prepared.warmup()
    assert backend.compiles == 3  # buckets 1, 2, 4
    # The classifier calls it under inference mode: no batch size may compile again.
    with torch.inference_mode():
        for n in (1, 2, 3, 4, 7):
            assert prepared(images[:n].contiguous()).shape == (n, 50)
    assert backend.compiles == 3


def _planted_classifier(tmp_path, speed):
    from birdstream.engine.classifier import Classifier
    from tests.support.planted import make_planted_checkpoint

    return Classifier.load(str(make_planted_checkpoint(tmp_path / "p.pt")), "cpu", "fp32", speed=speed, max_batch=4)


def test_a_failing_compile_falls_back_to_eager_with_one_line(tmp_path, caplog, fresh_dynamo):
    clf = _planted_classifier(tmp_path, SpeedOptions(compile=True))
    frames = np.random.default_rng(0).integers(0, 256, (3, *clf.input_size, 3), dtype=np.uint8)
    expected = _planted_classifier(tmp_path, SpeedOptions())(frames)
    clf.forward = prepare_network(clf.net, SpeedOptions(compile=True), max_batch=4,
                                  compile_backend=CountingBackend(fail=True))
    clf.warm_up(2)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "running without them" in errors[0].getMessage()
    assert "simulated compiler failure" in errors[0].getMessage() and "second line" not in errors[0].getMessage()
    assert clf.forward.buckets is None and "torch.compile" not in clf.forward.describe()
    np.testing.assert_allclose(clf(frames), expected, atol=1e-6)


def test_compile_works_on_a_torch_whose_compile_has_no_recompile_limit(net, images, fresh_dynamo, monkeypatch):
    """torch before 2.13: torch.compile has no recompile_limit; the process-wide dynamo limit is raised
    instead, so every bucket still compiles once (with the old default of 2 the rest would run eager)."""
    import torch._dynamo.config as dynamo_config

    real = torch.compile

    def compile_before_2_13(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None,
                            options=None, disable=False):
        return real(model, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode, options=options,
                    disable=disable)

    monkeypatch.setattr(torch, "compile", compile_before_2_13)
    monkeypatch.setattr(dynamo_config, "recompile_limit", 2)
    backend = CountingBackend()
    prepared = prepare_network(copy.deepcopy(net).fuse(), SpeedOptions(compile=True), max_batch=16,
                               compile_backend=backend)
    assert prepared.buckets == (1, 2, 4, 8, 16) and "torch.compile" in prepared.describe()
    prepared.warmup()
    assert backend.compiles == 5
    assert dynamo_config.recompile_limit >= 5


def test_a_torch_that_cannot_compile_starts_eager_with_one_line(tmp_path, caplog, monkeypatch):
    def no_compile(*args, **kwargs):
        raise RuntimeError("Dynamo is not supported on this Python\nsecond line of the trace")

    monkeypatch.setattr(torch, "compile", no_compile)
    with caplog.at_level("ERROR"):
        clf = _planted_classifier(tmp_path, SpeedOptions(compile=True))
        clf.warm_up(2)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "model.compile" in errors[0] and "running without it" in errors[0], errors
    assert "Dynamo is not supported" in errors[0] and "second line" not in errors[0]
    assert clf.forward.buckets is None and "torch.compile" not in clf.forward.describe()
    frames = np.random.default_rng(1).integers(0, 256, (2, *clf.input_size, 3), dtype=np.uint8)
    assert clf(frames).shape == (2, clf.num_classes)
