"""fp32 Linear layers through oneDNN on a CPU, where torch's default BLAS is the slower one.

torch runs an fp32 ``F.linear`` on a CPU through its BLAS (MKL in the official wheels). MKL picks
its kernels by CPU vendor: on AMD EPYC (the 2-core test machine) it ran the model's matmul shapes
at about 100 GFLOP/s per core where oneDNN, also bundled with torch, ran them at about 210 (2.1x,
every shape of the model, one thread, ``bench/model.py`` shows the effect on the whole forward).
Both accumulate in fp32; only the summation order differs (errors against float64 of the same
order, 1e-6 to 1e-5 at these sizes). ``available()`` probes the private op once and checks its
result, so a torch build without it keeps ``F.linear``.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` through oneDNN (fp32, inference only: the op has no backward)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@functools.cache
def available() -> bool:
    """Whether this torch can run fp32 linears through oneDNN, and they agree with ``F.linear``."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(s, generator=gen) for s in ((2, 7, 16), (12, 16), (12,)))
    try:
        with torch.inference_mode():
            got = linear(x, w, b)
    except (RuntimeError, NotImplementedError) as err:
        logger.info("oneDNN linear unavailable (%s); using torch's default", err)
        return False
    return bool(torch.allclose(got, F.linear(x, w, b), atol=1e-5, rtol=1e-5))
