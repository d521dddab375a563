"""Dynamic int8 quantization of the fused blocks' Linears, for CPU inference.

Weights are quantized once, per output channel (symmetric int8), from the fused fp32 weights, so
the LayerScale gammas folded into the rows of ``proj``/``fc2`` cost no precision. Activations are
quantized per call (per tensor) by ``torch.ops.quantized.linear_dynamic``: the same kernels as
``torch.ao.quantization.quantize_dynamic`` (fbgemm/oneDNN on x86, QNNPACK on ARM), applied to the
four wide fused matmuls of each block instead of its eight Birder-layout Linears. Attention
(SDPA), LayerNorm, the patch embedding and the classifier head stay fp32.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch

from birdstream.errors import ConfigError
from birdstream.model.vit_parallel import ParallelBlock, ViTParallel

logger = logging.getLogger(__name__)

_NAMES = ("qkv", "proj", "fc1", "fc2")


def default_reduce_range() -> bool:
    """7-bit activations unless the CPU has VNNI (without it, fbgemm's int16 accumulation can saturate)."""
    try:
        return not bool(torch.cpu._is_vnni_supported())
    except AttributeError:  # private helper; when absent, take the safe choice
        return True


class Int8Linears:
    """The packed int8 weights of one fused block; called as ``(x, name)`` in place of ``F.linear``."""

    def __init__(self, packed: dict[str, Any], reduce_range: bool) -> None:
        self.packed = packed
        self.reduce_range = reduce_range

    def __call__(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self.packed[name], self.reduce_range)

    @classmethod
    def from_block(cls, blk: ParallelBlock, reduce_range: bool) -> Int8Linears:
        packed = {}
        for name in _NAMES:
            w = blk._buffers[f"f_{name}_w"].detach().float()
            b = blk._buffers[f"f_{name}_b"].detach().float()
            packed[name] = _pack(w, b)
        return cls(packed, reduce_range)


def _pack(w: torch.Tensor, b: torch.Tensor) -> Any:
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
    zero = torch.zeros(w.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        # torch marks quantized tensor creation as deprecated; the dynamic kernels remain the fast path.
        warnings.simplefilter("ignore", UserWarning)
        qw = torch.quantize_per_channel(w, scale, zero, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(qw, b)


def quantize_int8(net: ViTParallel, reduce_range: bool | None = None) -> ViTParallel:
    """Switch every block of an fp32, eval-mode CPU network to int8 dynamic-quantized fused Linears (in place)."""
    if net.autocast_dtype is not None:
        raise ConfigError(
            "model.quantize: int8 runs in fp32 around the int8 matmuls; set model.precision to fp32 or auto"
        )
    if any(p.device.type != "cpu" for p in net.parameters()):
        raise ConfigError("model.quantize: int8 is for the CPU; use model.precision fp16/bf16 on a GPU")
    if net.training:
        raise ValueError("quantize the network in eval mode (inference only)")
    if reduce_range is None:
        reduce_range = default_reduce_range()
    try:
        for blk in net.encoder.block:
            if not blk.fused:
                blk.fuse()
            int8 = Int8Linears.from_block(blk, reduce_range)
            blk.int8 = int8
            for name in _NAMES:
                # The fp32 fused copies are no longer read: free them (about 240 MB for the full model).
                blk._buffers.pop(f"f_{name}_w", None)
                blk._buffers.pop(f"f_{name}_b", None)
    except (RuntimeError, AttributeError) as err:
        net.unfuse()
        raise ConfigError(
            f"model.quantize: int8 is not supported by this torch build "
            f"(quantized engine {torch.backends.quantized.engine!r}: {err})"
        ) from None
    logger.info(
        "int8 dynamic quantization: %d blocks, engine %s, reduce_range %s",
        len(net.encoder.block), torch.backends.quantized.engine, reduce_range,
    )
    return net
