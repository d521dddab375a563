"""Model throughput: birdstream's forward (fused and Birder-layout paths) against Birder's own, same process.

``run_bench`` builds the full ``vit_parallel_s16_18x2_ls_avg`` with random weights (no download),
copies the same weights into Birder's implementation when ``birder`` is importable, checks the
outputs agree, and times each path interleaved (median of ``iterations``), so the ratio is fair on
a busy machine. ``format_table`` renders the rows for ``birdstream bench``.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from birdstream.model.api import resolve_device, resolve_dtype
from birdstream.model.vit_parallel import VIT_PARALLEL_S16_18X2_LS_AVG, ViTParallel, ViTParallelConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchRow:
    """Images per second at one batch size; ``None`` where a path was not measured."""

    batch: int
    fused_ips: float
    reference_ips: float
    birder_ips: float | None
    max_abs_diff: float | None

    @property
    def ratio(self) -> float:
        """Fused birdstream over Birder (or over birdstream's Birder-layout path when Birder is absent)."""
        base = self.birder_ips if self.birder_ips is not None else self.reference_ips
        return self.fused_ips / base


def _birder_net(num_classes: int, size: tuple[int, int], config: dict[str, Any]) -> torch.nn.Module | None:
    try:
        import birder.net  # noqa: F401  (registers the networks)
        from birder.model_registry import registry
    except Exception:  # birder is optional here; any import failure means "not available"
        logger.info("birder is not importable; comparing against birdstream's Birder-layout path")
        return None
    return registry.net_factory("vit_parallel_s16_18x2_ls_avg", num_classes, 3, config=config, size=size)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _random_net(num_classes: int, size: tuple[int, int], config: dict[str, Any], seed: int) -> ViTParallel:
    """The Birder-layout network with seeded random weights, eval and frozen."""
    torch.manual_seed(seed)
    net = ViTParallel(num_classes, size, ViTParallelConfig.from_birder(config))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(".gamma"):
                p.uniform_(0.05, 0.5)  # non-trivial LayerScale so every branch counts
            elif name.startswith("classifier."):
                p.normal_(std=0.05)
    return net.eval().requires_grad_(False)


def run_bench(
    batch_sizes: Sequence[int] = (1, 2, 4),
    *,
    iterations: int = 3,
    warmup: int = 1,
    device: str | torch.device | None = "cpu",
    precision: str | torch.dtype | None = "fp32",
    size: tuple[int, int] = (384, 384),
    num_classes: int = 735,
    config: dict[str, Any] | None = None,
    compare_birder: bool = True,
    seed: int = 0,
) -> list[BenchRow]:
    """Measure images/s per batch size for the fused path, the Birder-layout path and (if present) Birder."""
    dev = resolve_device(device)
    amp = resolve_dtype(precision, dev)
    merged = {**VIT_PARALLEL_S16_18X2_LS_AVG, **(config or {})}
    ref = _random_net(num_classes, size, merged, seed)
    birder = _birder_net(num_classes, size, config or {}) if compare_birder else None
    if birder is not None:
        birder.load_state_dict(ref.state_dict())
        birder.eval().requires_grad_(False).to(dev)
    ref.autocast_dtype = None if amp is torch.float32 else amp
    ref.to(dev)
    fused = ViTParallel(num_classes, size, ViTParallelConfig.from_birder(merged))
    fused.load_state_dict(ref.state_dict())
    fused.autocast_dtype = ref.autocast_dtype
    fused.eval().requires_grad_(False).to(dev).fuse()

    def birder_fn(x: torch.Tensor) -> torch.Tensor:
        assert birder is not None
        if amp is torch.float32:
            return birder(x)
        with torch.autocast(dev.type, dtype=amp):
            return birder(x)

    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, 3, *size, device=dev)
        paths: dict[str, Callable[[], Any]] = {"fused": lambda: fused(x), "reference": lambda: ref(x)}
        if birder is not None:
            paths["birder"] = lambda: birder_fn(x)
        times: dict[str, list[float]] = {k: [] for k in paths}
        diff = None
        with torch.inference_mode():
            if birder is not None:
                diff = float((fused(x).float() - birder_fn(x).float()).abs().max())
            for _ in range(warmup):
                for fn in paths.values():
                    fn()
            for _ in range(iterations):
                for name, fn in paths.items():
                    times[name].append(_time(fn, dev))
        med = {k: batch / statistics.median(v) for k, v in times.items()}
        rows.append(BenchRow(batch, med["fused"], med["reference"], med.get("birder"), diff))
        logger.info("batch %d: %s", batch, med)
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    """A plain-text table: batch, images/s per path, the speed ratio and the output difference."""
    has_birder = any(r.birder_ips is not None for r in rows)
    head = ["batch", "birdstream img/s", "birder-layout img/s"]
    if has_birder:
        head += ["birder img/s", "ratio vs birder", "max |logit diff|"]
    else:
        head += ["ratio vs birder-layout"]
    lines = [head]
    for r in rows:
        line = [str(r.batch), f"{r.fused_ips:.2f}", f"{r.reference_ips:.2f}"]
        if has_birder:
            line += [
                f"{r.birder_ips:.2f}" if r.birder_ips else "-",
                f"{r.ratio:.2f}x",
                f"{r.max_abs_diff:.1e}" if r.max_abs_diff is not None else "-",
            ]
        else:
            line += [f"{r.ratio:.2f}x"]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)
