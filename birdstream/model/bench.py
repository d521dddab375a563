"""Model throughput: birdstream's forward (both layouts) against Birder's own, same process, alternating.

``run_bench`` builds the full ``vit_parallel_s16_18x2_ls_avg`` with random weights (no download),
copies the same weights into Birder's implementation when ``birder`` is importable, checks the
outputs agree, warms every path up, then runs ``iterations`` short rounds: each round times one
forward of every path, in an order rotated each round, so a burst of load from other work on a
shared machine falls on all of them alike. The ratio against Birder is taken per round (paired,
adjacent in time) and summarised by its median and quartiles; wall and process CPU time are both
kept, because on a machine whose cores other work takes, CPU time is the steadier of the two.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from birdstream.model.api import choose_layout, fuse_pays, resolve_device, resolve_dtype
from birdstream.model.vit_parallel import VIT_PARALLEL_S16_18X2_LS_AVG, ViTParallel, ViTParallelConfig

logger = logging.getLogger(__name__)

FUSED, LAYOUT, BIRDER = "fused", "birder-layout", "birder"


@dataclass(frozen=True)
class Spread:
    """Median and quartiles of a sample."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if len(values) < 2:
            return cls(values[0], values[0], values[0])
        q = statistics.quantiles(values, n=4, method="inclusive")
        return cls(statistics.median(values), q[0], q[2])

    def text(self, digits: int = 2, unit: str = "") -> str:
        return f"{self.median:.{digits}f}{unit}[{self.low:.{digits}f}-{self.high:.{digits}f}]"


@dataclass(frozen=True)
class BenchRow:
    """One batch size: images/s per path (median over rounds) and paired ratios against the baseline."""

    batch: int
    default: str  # the layout load_pretrained_model picks on this device
    ips: dict[str, Spread]
    wall_ratio: dict[str, Spread]  # per round: baseline seconds / path seconds
    cpu_ratio: dict[str, Spread]  # the same with process CPU time
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # against Birder, when present

    @property
    def baseline(self) -> str:
        return BIRDER if BIRDER in self.ips else LAYOUT

    @property
    def fused_ips(self) -> float:
        return self.ips[FUSED].median

    @property
    def reference_ips(self) -> float:
        return self.ips[LAYOUT].median

    @property
    def birder_ips(self) -> float | None:
        return self.ips[BIRDER].median if BIRDER in self.ips else None

    @property
    def ratio(self) -> float:
        """The default layout over the baseline (Birder, or birdstream's Birder layout without it)."""
        return self.wall_ratio[self.default].median


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


def _time(fn: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    _sync(device)
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def machine_line(device: str | torch.device | None = "cpu") -> str:
    """Threads, cores and load: what a reader needs to judge the figures."""
    dev = resolve_device(device)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"torch {torch.__version__} on {dev}: {torch.get_num_threads()} intra-op threads, "
        f"{torch.get_num_interop_threads()} inter-op, {os.cpu_count()} cores, load average {load}"
    )


def _networks(
    num_classes: int, size: tuple[int, int], merged: dict[str, Any], config: dict[str, Any] | None,
    dev: torch.device, amp: torch.dtype, compare_birder: bool, seed: int,
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    torch.manual_seed(seed)
    ref = ViTParallel(num_classes, size, ViTParallelConfig.from_birder(merged))
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith(".gamma"):
                p.uniform_(0.05, 0.5)  # non-trivial LayerScale so every branch counts
            elif name.startswith("classifier."):
                p.normal_(std=0.05)
    ref.eval().requires_grad_(False)
    birder = _birder_net(num_classes, size, config or {}) if compare_birder else None
    ref.autocast_dtype = None if amp is torch.float32 else amp
    fused = ViTParallel(num_classes, size, ViTParallelConfig.from_birder(merged))
    fused.load_state_dict(ref.state_dict())
    fused.autocast_dtype = ref.autocast_dtype
    fused.eval().requires_grad_(False).to(dev)
    # Each as the loader would run it on this device, with the layout forced.
    paths: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        FUSED: choose_layout(fused, dev, amp, fuse=True), LAYOUT: choose_layout(ref.to(dev), dev, amp, fuse=False)
    }
    if birder is not None:
        birder.load_state_dict(ref.state_dict())
        birder.eval().requires_grad_(False).to(dev)

        def birder_fn(x: torch.Tensor) -> torch.Tensor:
            if amp is torch.float32:
                return birder(x)
            with torch.autocast(dev.type, dtype=amp):
                return birder(x)

        paths[BIRDER] = birder_fn
    return paths


def _rounds(
    paths: dict[str, Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor, dev: torch.device, iterations: int
) -> dict[str, list[tuple[float, float]]]:
    names = list(paths)
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
    for r in range(iterations):
        shift = r % len(names)  # each path takes each position in turn
        for name in names[shift:] + names[:shift]:
            times[name].append(_time(lambda: paths[name](x), dev))
    return times


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
    """Measure images/s per batch size for both birdstream layouts and (if present) Birder, alternating."""
    dev = resolve_device(device)
    amp = resolve_dtype(precision, dev)
    merged = {**VIT_PARALLEL_S16_18X2_LS_AVG, **(config or {})}
    paths = _networks(num_classes, size, merged, config, dev, amp, compare_birder, seed)
    base = BIRDER if BIRDER in paths else LAYOUT
    default = FUSED if fuse_pays(dev) else LAYOUT
    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, 3, *size, device=dev)
        with torch.inference_mode():
            diff = {}
            if BIRDER in paths:
                want = paths[BIRDER](x).float()
                diff = {k: float((paths[k](x).float() - want).abs().max()) for k in (FUSED, LAYOUT)}
            for _ in range(warmup):
                for fn in paths.values():
                    fn(x)
            times = _rounds(paths, x, dev, max(1, iterations))
        ips = {k: Spread.of([batch / w for w, _ in v]) for k, v in times.items()}
        wall = {k: Spread.of([b[0] / t[0] for b, t in zip(times[base], v)]) for k, v in times.items()}
        cpu = {k: Spread.of([b[1] / max(t[1], 1e-9) for b, t in zip(times[base], v)]) for k, v in times.items()}
        rows.append(BenchRow(batch, default, ips, wall, cpu, diff))
        logger.info("batch %d: %s", batch, {k: round(s.median, 3) for k, s in ips.items()})
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    """Plain text: per batch, images/s per path (median[quartiles]), ratios vs the baseline, output difference."""
    if not rows:
        return ""
    first = rows[0]
    base = first.baseline
    others = [k for k in (FUSED, LAYOUT) if k != first.default] + ([BIRDER] if BIRDER in first.ips else [])
    head = ["batch", "birdstream img/s", *[f"{k} img/s" for k in others], "birdstream quartiles"]
    head += [f"default vs {base} wall", f"fused vs {base} wall", f"default vs {base} cpu"]
    if base == BIRDER:
        head += ["max |logit diff|"]
    lines = [head]
    for r in rows:
        mine = r.ips[r.default]
        line = [str(r.batch), f"{mine.median:.2f}", *[f"{r.ips[k].median:.2f}" for k in others]]
        line += [f"{mine.low:.2f}-{mine.high:.2f}"]
        line += [r.wall_ratio[r.default].text(unit="x"), r.wall_ratio[FUSED].text(unit="x"),
                 r.cpu_ratio[r.default].text(unit="x")]
        if base == BIRDER:
            line += [f"{max(r.max_abs_diff.values()):.1e}" if r.max_abs_diff else "-"]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)


def table_note(rows: Sequence[BenchRow]) -> str:
    """What the table's columns mean, for a line after it."""
    default = rows[0].default if rows else LAYOUT
    return (
        f"birdstream = {default}, the layout load_pretrained_model picks on this device; img/s: medians over alternating "
        "rounds; ratios: paired per round, median[first-third quartile] (>1: faster)"
    )
