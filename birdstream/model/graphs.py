"""Batch-size buckets and CUDA graph replay of a fixed-shape forward.

A CUDA graph replays a recorded kernel sequence with one launch, removing the per-kernel Python
and launch overhead that dominates small batches. Shapes are fixed per graph, so batches are
padded up to a bucket (powers of two up to ``max_batch``); samples never interact in this
network (LayerNorm is per token, attention is per image), so padding rows cannot change results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

logger = logging.getLogger(__name__)

# torch.compile recompiles per shape; its default limit is 8 shapes per function.
MAX_BUCKETS = 8


def batch_buckets(max_batch: int, max_buckets: int = MAX_BUCKETS) -> tuple[int, ...]:
    """Powers of two below ``max_batch`` plus ``max_batch`` itself, the smallest dropped beyond ``max_buckets``."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    sizes = [1 << i for i in range(max_batch.bit_length()) if (1 << i) < max_batch] + [max_batch]
    return tuple(sizes[-max_buckets:])


def bucket_for(n: int, buckets: Sequence[int]) -> int:
    """The smallest bucket holding ``n`` samples."""
    for b in buckets:
        if n <= b:
            return b
    raise ValueError(f"batch of {n} is larger than the largest bucket {buckets[-1]}")


def pad_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` with zero rows appended up to ``size`` rows."""
    n = x.shape[0]
    if n == size:
        return x
    return torch.cat([x, x.new_zeros((size - n, *x.shape[1:]))], dim=0)


class GraphedForward:
    """Replays one CUDA graph per bucket; captured on first use of a bucket (or by ``capture``)."""

    def __init__(
        self, fn: Callable[[torch.Tensor], torch.Tensor], sample_shape: Sequence[int], device: torch.device,
        buckets: Sequence[int], warmup_iters: int = 3,
    ) -> None:
        if device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        self.fn = fn
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.device = device
        self.buckets = tuple(buckets)
        self.warmup_iters = warmup_iters
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def capture(self, batch: int) -> None:
        """Record the forward for a batch of exactly ``batch`` (a bucket size)."""
        if batch in self._graphs:
            return
        # The model's device current throughout (torch.cuda.graph works on the current device).
        with torch.cuda.device(self.device), torch.inference_mode():
            static_in = torch.zeros((batch, *self.sample_shape), device=self.device)
            # Warm up on a side stream (cuBLAS/SDPA workspaces, lazy init, compilation), as the CUDA
            # graph docs ask.
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(self.warmup_iters):
                    self.fn(static_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: decoder threads (NVDEC) may use CUDA while this thread captures.
            with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
                static_out = self.fn(static_in)
            torch.cuda.synchronize(self.device)
        self._graphs[batch] = (graph, static_in, static_out)
        logger.debug("captured a CUDA graph for batch %d", batch)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"input {tuple(x.shape[1:])} does not match the captured shape {self.sample_shape}")
        b = bucket_for(n, self.buckets)
        self.capture(b)
        graph, static_in, static_out = self._graphs[b]
        with torch.inference_mode():
            static_in[:n].copy_(x, non_blocking=True)
            graph.replay()
            # The next replay overwrites static_out: hand out a copy.
            return static_out[:n].clone()
