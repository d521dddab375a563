"""Speed options on a CUDA device: CUDA graphs and compiled graphs give the eager forward's outputs."""

from __future__ import annotations

import copy

import pytest
import torch

from birdstream.model.graphs import bucket_for, pad_batch
from birdstream.model.speed import SpeedOptions, prepare_network
from birdstream.model.synthetic import natural_images, random_network, to_input

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")

SMALL = {"num_layers": 2, "hidden_dim": 64, "num_heads": 4, "mlp_dim": 128}


def _net(dtype: torch.dtype | None) -> torch.nn.Module:
    net = random_network(50, (64, 64), SMALL, seed=3, head_std=0.5)
    net.autocast_dtype = dtype
    return net.cuda().fuse()


def _eager_at_buckets(net, x: torch.Tensor, n: int, buckets) -> torch.Tensor:
    """The eager forward of the first n samples padded as the bucketed path pads them (same GEMM shapes)."""
    with torch.inference_mode():
        return net(pad_batch(x[:n], bucket_for(n, buckets)))[:n].float()


@pytest.mark.parametrize("dtype", [None, torch.bfloat16, torch.float16])
def test_cuda_graphs_match_eager(dtype):
    net = _net(dtype)
    x = to_input(natural_images(5, (64, 64), seed=4)).cuda()
    prepared = prepare_network(copy.deepcopy(net), SpeedOptions(cuda_graphs=True), max_batch=8)
    assert prepared.buckets == (1, 2, 4, 8) and prepared.describe() == "CUDA graphs"
    prepared.warmup()
    tol = 1e-3 if dtype is None else 2e-2
    for n in (5, 1, 3, 5):  # replays, padded to buckets 8, 1, 4, 8
        out = prepared(x[:n])
        torch.testing.assert_close(out, _eager_at_buckets(net, x, n, prepared.buckets), atol=tol, rtol=0)
    first = prepared(x[:2])
    prepared(x[2:4])  # a later replay must not change an earlier result
    torch.testing.assert_close(first, _eager_at_buckets(net, x, 2, prepared.buckets), atol=tol, rtol=0)


def test_int8_is_skipped_on_cuda(caplog):
    prepared = prepare_network(_net(None), SpeedOptions(quantize="int8"))
    assert not prepared.net.quantized and "CPU only" in caplog.text


def test_compile_with_graphs_matches_eager():
    torch._dynamo.reset()
    net = _net(torch.bfloat16)
    x = to_input(natural_images(3, (64, 64), seed=4)).cuda()
    prepared = prepare_network(copy.deepcopy(net), SpeedOptions(compile=True, cuda_graphs=True), max_batch=4)
    assert prepared.describe() == "torch.compile, CUDA graphs"
    prepared.warmup()  # compiles and captures buckets 1, 2, 4
    for _ in range(3):  # replays, not captures
        first = prepared(x)
        prepared(x[:1])
        # inductor fuses differently in bf16; a later replay must not change an earlier result
        torch.testing.assert_close(first, _eager_at_buckets(net, x, 3, prepared.buckets), atol=5e-2, rtol=2e-2)
