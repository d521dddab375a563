"""Device and precision choices: resolved once at load, autocast for fp16/bf16, clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import birdstream
from birdstream.errors import ConfigError
from birdstream.model.api import resolve_device, resolve_dtype
from tests.model.test_parity import CKPT, FIX, test_input


def test_auto_device_is_cpu_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_gpu_is_a_config_error(device):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        birdstream.load_pretrained_model(CKPT, device=device)


@pytest.mark.parametrize("device", ["tpu", "gpu0", "mps"])
def test_unknown_device(device):
    with pytest.raises(ConfigError, match="model.device"):
        resolve_device(device)


def test_dtype_names():
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) is torch.float32
    assert resolve_dtype("auto", cpu) is torch.float32
    assert resolve_dtype("fp16", cpu) is torch.float16
    assert resolve_dtype("bf16", cpu) is torch.bfloat16
    assert resolve_dtype(torch.bfloat16, cpu) is torch.bfloat16
    with pytest.raises(ConfigError, match="model.precision"):
        resolve_dtype("int8", cpu)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("fuse", [False, True])
def test_reduced_precision_autocast_on_cpu(precision, fuse):
    net, info = birdstream.load_pretrained_model(CKPT, device="cpu", dtype=precision, fuse=fuse)
    assert info.dtype is resolve_dtype(precision, torch.device("cpu"))
    assert all(p.dtype is torch.float32 for p in net.parameters())  # weights stay fp32; autocast computes
    x = torch.from_numpy(test_input((3, 3, 64, 96), seed=99))
    probs, emb = birdstream.infer_batch(net, x, return_embedding=True)
    assert probs.dtype == np.float32 and emb.dtype == np.float32
    ref = torch.softmax(torch.from_numpy(np.load(FIX / "logits.npy")), dim=1).numpy()
    np.testing.assert_allclose(probs, ref, atol=3e-2)
    with torch.inference_mode():
        assert net(x).dtype is info.dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda(precision):
    net, info = birdstream.load_pretrained_model(CKPT, device="cuda", dtype=precision)
    assert all(p.device.type == "cuda" for p in net.parameters())
    assert all(b.device.type == "cuda" for b in net.buffers())
    x = torch.from_numpy(test_input((3, 3, 64, 96), seed=99)).cuda()
    with torch.inference_mode():
        logits = net(x).float().cpu().numpy()
    tol = 1e-3 if precision == "fp32" else 5e-2  # TF32/cuBLAS differ from CPU
    np.testing.assert_allclose(logits, np.load(FIX / "logits.npy"), atol=tol)
