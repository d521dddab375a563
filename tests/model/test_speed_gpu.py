"""Speed options on a CUDA device: CUDA graphs and compiled graphs give the eager forward's outputs."""

from __future__ import annotations

import copy

import pytest
import torch

from birdstream.model.speed import SpeedOptions, prepare_network
from birdstream.model.synthetic import natural_images, random_network, to_input

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")

SMALL = {"num_layers": 2, "hidden_dim": 64, "num_heads": 4, "mlp_dim": 128}


def _net(dtype: torch.dtype | None) -> torch.nn.Module:
    net = random_network(50, (64, 64), SMALL, seed=3, head_std=0.5)
    net.autocast_dtype = dtype
    return net.cuda().fuse()


@pytest.mark.parametrize("dtype", [None, torch.bfloat16, torch.float16])
def test_cuda_graphs_match_eager(dtype):
    net = _net(dtype)
    x = to_input(natural_images(5, (64, 64), seed=4)).cuda()
    with torch.inference_mode():
        expected = net(x).float()
    prepared = prepare_network(copy.deepcopy(net), SpeedOptions(cuda_graphs=True), max_batch=8)
    assert prepared.buckets == (1, 2, 4, 8) and prepared.describe() == "CUDA graphs"
    prepared.warmup()
    for n in (5, 1, 3, 5):  # replays, padded to buckets 8, 1, 4, 8
        out = prepared(x[:n])
        torch.testing.assert_close(out, expected[:n], atol=1e-3 if dtype is None else 2e-2, rtol=0)
    first = prepared(x[:2])
    prepared(x[2:4])  # a later replay must not change an earlier result
    torch.testing.assert_close(first, expected[:2], atol=1e-3 if dtype is None else 2e-2, rtol=0)


def test_int8_is_skipped_on_cuda(caplog):
    prepared = prepare_network(_net(None), SpeedOptions(quantize="int8"))
    assert not prepared.net.quantized and "CPU only" in caplog.text


def test_compile_with_graphs_matches_eager():
    net = _net(torch.bfloat16)
    x = to_input(natural_images(3, (64, 64), seed=4)).cuda()
    with torch.inference_mode():
        expected = net(x).float()
    prepared = prepare_network(copy.deepcopy(net), SpeedOptions(compile=True, cuda_graphs=True), max_batch=4)
    first = prepared(x)
    prepared(x[:1])
    torch.testing.assert_close(first, expected, atol=5e-2, rtol=2e-2)  # inductor fuses differently in bf16
