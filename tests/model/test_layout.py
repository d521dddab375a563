"""The residual stream is token-major and contiguous; the layout (fused or Birder's) is chosen per device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import birdstream
from birdstream.model.api import fuse_pays

CKPT = Path(__file__).resolve().parent / "fixtures" / "tiny_vit_parallel.pt"


def _block_inputs(net: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    hooks = [blk.register_forward_pre_hook(lambda _m, args: seen.append(args[0])) for blk in net.encoder.block]
    try:
        with torch.inference_mode():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.parametrize("fuse", [False, True], ids=["birder-layout", "fused"])
def test_residual_stream_is_contiguous_through_every_block(fuse):
    net, _ = birdstream.load_pretrained_model(CKPT, device="cpu", fuse=fuse)
    seen = _block_inputs(net, torch.randn(2, 3, 64, 96))
    assert len(seen) == len(net.encoder.block) == 2
    assert all(t.is_contiguous() for t in seen), [t.stride() for t in seen]


def test_contiguous_stream_keeps_birders_logits():
    net, _ = birdstream.load_pretrained_model(CKPT, device="cpu")
    x = torch.from_numpy(np.random.default_rng(99).standard_normal((3, 3, 64, 96), dtype=np.float32))
    with torch.inference_mode():
        got = net(x).numpy()
    np.testing.assert_allclose(got, np.load(CKPT.parent / "logits.npy"), atol=5e-6, rtol=0)


def test_layout_is_chosen_per_device_at_load_time():
    assert not fuse_pays(torch.device("cpu"))
    assert fuse_pays(torch.device("cuda"))
    net, _ = birdstream.load_pretrained_model(CKPT, device="cpu")
    assert not net.fused  # the CPU default is the Birder layout
    forced, _ = birdstream.load_pretrained_model(CKPT, device="cpu", fuse=True)
    assert forced.fused
    if torch.cuda.is_available():
        on_gpu, _ = birdstream.load_pretrained_model(CKPT, device="cuda")
        assert on_gpu.fused


def test_cpu_fp32_linears_run_through_onednn_and_keep_birders_logits():
    from birdstream.model import onednn
    from birdstream.model.vit_parallel import Linear

    if not onednn.available():
        pytest.skip("this torch build has no oneDNN linear")
    x = torch.from_numpy(np.random.default_rng(99).standard_normal((3, 3, 64, 96), dtype=np.float32))
    for fuse in (False, True):
        net, _ = birdstream.load_pretrained_model(CKPT, device="cpu", fuse=fuse)
        linears = [m for m in net.encoder.modules() if isinstance(m, Linear)]
        assert linears and all(m.onednn for m in linears)
        assert all(blk.onednn for blk in net.encoder.block)
        with torch.inference_mode():
            got = net(x).numpy()
        np.testing.assert_allclose(got, np.load(CKPT.parent / "logits.npy"), atol=5e-6, rtol=0)
    bf16, _ = birdstream.load_pretrained_model(CKPT, device="cpu", dtype="bf16")
    assert not any(m.onednn for m in bf16.encoder.modules() if isinstance(m, Linear))  # autocast decides there


def test_onednn_linear_equals_f_linear_on_model_shapes():
    from birdstream.model import onednn

    if not onednn.available():
        pytest.skip("this torch build has no oneDNN linear")
    gen = torch.Generator().manual_seed(1)
    for k, n in ((48, 144), (96, 48), (384, 1152)):
        x, w, b = torch.randn(2, 40, k, generator=gen), torch.randn(n, k, generator=gen) * 0.05, torch.randn(n)
        with torch.inference_mode():
            want = (x.double() @ w.double().T + b.double()).float()
            torch.testing.assert_close(onednn.linear(x, w, b), want, atol=2e-5, rtol=1e-5)
            torch.testing.assert_close(onednn.linear(x, w, None), want - b, atol=2e-5, rtol=1e-5)


def test_onednn_forward_traces_without_graph_breaks():
    """model.compile on a CPU compiles the oneDNN linears too (one graph, same logits)."""
    from birdstream.model import onednn

    if not onednn.available():
        pytest.skip("this torch build has no oneDNN linear")
    torch._dynamo.reset()
    net, _ = birdstream.load_pretrained_model(CKPT, device="cpu")
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        want = net(x)
        got = torch.compile(net, fullgraph=True, dynamic=False, backend="eager")(x)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    torch._dynamo.reset()
