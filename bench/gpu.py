"""GPU throughput of the full model per precision and batch size, against a matmul ceiling measured in the same run.

    PYTHONPATH=. python bench/gpu.py --out gpu.json                    # eager fp32/tf32/fp16/bf16 + end to end
    PYTHONPATH=. python bench/gpu.py --cuda-graphs --compile --out gpu.json
    PYTHONPATH=. python bench/gpu.py --device cpu --quick              # tiny settings: proves the script runs

Needs only torch, numpy and the repository on PYTHONPATH. For each variant (precision under
autocast with SDPA attention, optionally CUDA graphs / torch.compile through the engine's
``prepare_network``) it prints images/s per batch size, the achieved TFLOP/s (FLOPs counted from
the architecture: ~92 GFLOP per 384x384 image for the full model) and its fraction of a bf16
``torch.matmul`` ceiling timed here, and top-1 agreement / top-5 overlap / max |probability
difference| against fp32 on the same natural-looking images. The ``e2e`` rows time what the engine
does per batch: uint8 frames in (pinned or pageable) host memory -> non_blocking copy -> normalise
on the device -> forward -> softmax -> probabilities back on the host. The ``engine`` rows go
through the real Engine and tracker thread (bench/engine_e2e.py): producer threads, mailboxes,
stacking into pinned buffers, the copy on a side stream, the forward, the trackers; their
``vs_forward`` is engine img/s over the bare forward's at the same batch (goal: >= 0.9). Each row
names the SDPA attention kernel the profiler saw (flash, efficient, cudnn, math). Weights are
random (seeded): agreement shows how much a precision perturbs a network of this shape, not
accuracy on birds.

The JSON (--out) is rewritten after every variant, so a run cut short keeps what it measured;
--budget-s is checked between batch sizes too, and what did not fit is listed as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from birdstream.engine.classifier import Classifier
from birdstream.model.speed import PreparedNetwork, SpeedOptions, prepare_network
from birdstream.model.synthetic import RGB_MEAN, RGB_STD, agreement, natural_images, random_network, to_input
from birdstream.model.vit_parallel import ViTParallel

TINY = {"num_layers": 2, "hidden_dim": 64, "num_heads": 4, "mlp_dim": 128}
DTYPES = {"fp32": None, "tf32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def forward_flops(net: ViTParallel, size: tuple[int, int]) -> float:
    """Multiply-adds x 2 of one image's forward: patch embedding, every block's matmuls and attention, head."""
    cfg, p = net.cfg, net.cfg.patch_size
    n = (size[0] // p) * (size[1] // p) + net.num_special_tokens
    d, m, par = cfg.hidden_dim, cfg.mlp_dim, cfg.num_parallel
    patch = 2 * (n - net.num_special_tokens) * 3 * p * p * d
    block = 2 * n * d * 3 * par * d + 2 * 2 * n * n * d * par + 2 * n * par * d * d + 2 * 2 * n * d * par * m
    head = 2 * d * net.num_classes
    return float(patch + cfg.num_layers * block + head)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def median_seconds(fn: Callable[[], Any], dev: torch.device, warmup: int, iterations: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        sync(dev)
        t0 = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_ceiling(dev: torch.device, n: int, iterations: int) -> float:
    """TFLOP/s of a square bf16 matmul (fp32 on CPU): the practical peak the model is measured against."""
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    t = median_seconds(lambda: torch.matmul(a, b), dev, warmup=3, iterations=iterations)
    return 2 * n**3 / t / 1e12


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def flash_available(dev: torch.device) -> bool:
    if dev.type != "cuda":
        return False
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, 12, 576, 64, device=dev, dtype=torch.bfloat16)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
        return True
    except RuntimeError:
        return False


SDPA_KERNELS = {  # aten op of each SDPA backend, as the profiler names it
    "flash": "_scaled_dot_product_flash_attention",
    "efficient": "_scaled_dot_product_efficient_attention",
    "cudnn": "_scaled_dot_product_cudnn_attention",
    "math": "_scaled_dot_product_attention_math",
}


def attention_backend(fast: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> str:
    """Which SDPA kernel one forward ran ("flash", "efficient", "cudnn", "math"), seen by the profiler."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fast(x)
    names = [e.key for e in prof.key_averages()]
    seen = [k for k, op in SDPA_KERNELS.items() if any(op in n for n in names)]
    return "+".join(seen) or "not visible"


def build(
    base: ViTParallel, dev: torch.device, precision: str, options: SpeedOptions, max_batch: int
) -> PreparedNetwork:
    net = copy.deepcopy(base)
    net.autocast_dtype = DTYPES[precision]
    net.to(dev).fuse()
    return prepare_network(net, options, max_batch=max_batch)


def variants(args: argparse.Namespace, dev: torch.device) -> list[tuple[str, str, SpeedOptions]]:
    out = []
    for prec in args.precisions:
        if prec == "tf32" and dev.type != "cuda":
            continue
        out.append((prec, prec, SpeedOptions()))
    graphs = dev.type == "cuda" and args.cuda_graphs
    for prec in args.fast_precisions:
        if graphs:
            out.append((f"{prec} cuda-graphs", prec, SpeedOptions(cuda_graphs=True)))
        if args.compile:
            out.append((f"{prec} compile", prec, SpeedOptions(compile=True)))
            if graphs:
                out.append((f"{prec} compile+graphs", prec, SpeedOptions(compile=True, cuda_graphs=True)))
    return out


def run(args: argparse.Namespace, save: Callable[[dict[str, Any]], None] = lambda result: None) -> dict[str, Any]:
    """Every variant in turn; ``save`` gets the results so far after each one (a cut-short run keeps them)."""
    started = time.monotonic()
    deadline = started + args.budget_s
    dev = torch.device(args.device)
    size = (args.size, args.size)
    base = random_network(args.classes, size, args.config, seed=args.seed, head_std=args.head_std)
    flops = forward_flops(base, size)
    frames = natural_images(args.images, size, seed=args.seed + 1)  # uint8 [N, H, W, 3]
    x_all = to_input(frames).to(dev)
    ceiling = matmul_ceiling(dev, args.matmul_size, args.iterations)
    meta = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "gflop_per_image": flops / 1e9,
        "matmul_ceiling_tflops": ceiling, "flash_attention": flash_available(dev),
        "params_m": sum(p.numel() for p in base.parameters()) / 1e6,
    }
    rows: list[dict[str, Any]] = []
    result = {"meta": meta, "rows": rows, "elapsed_s": time.monotonic() - started}
    save(result)
    reference = None
    for name, prec, opts in variants(args, dev):
        if time.monotonic() > deadline:
            rows.append({"variant": name, "skipped": "time budget"})
            continue
        try:
            with tf32(prec == "tf32"):
                new_rows, logits = run_variant(
                    name, prec, opts, base, x_all, frames, reference, dev, args, flops, ceiling, deadline
                )
            reference = logits if reference is None else reference
            rows += new_rows
        except Exception as err:  # one failing variant (e.g. a compiler error) must not lose the others
            traceback.print_exc()
            first = (str(err).splitlines() or [""])[0][:80]
            rows.append({"variant": name, "skipped": f"error: {type(err).__name__}: {first}"})
        if opts.compile:
            torch._dynamo.reset()  # drop compiled code (and the graphs' memory) before the next variant
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        result["elapsed_s"] = time.monotonic() - started
        save(result)
    return result


def run_variant(
    name: str, prec: str, opts: SpeedOptions, base: ViTParallel, x_all: torch.Tensor, frames: Any,
    reference: torch.Tensor | None, dev: torch.device, args: argparse.Namespace, flops: float, ceiling: float,
    deadline: float = float("inf"),
) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """Rows for one variant at each batch size (and end to end for plain ones), and its logits on x_all."""
    batches = args.compile_batches if opts.compile else args.batches
    t0 = time.monotonic()
    fast = build(base, dev, prec, opts, max(batches))
    fast.warmup(tuple(batches) if fast.buckets else None)
    setup_s = time.monotonic() - t0
    logits = torch.cat([fast(x_all[i : i + 32]) for i in range(0, len(x_all), 32)]).cpu()
    # The first variant is fp32 eager: the reference for the others.
    agree = agreement(logits if reference is None else reference, logits)
    attention = attention_backend(fast, x_all[:1])
    if attention not in SDPA_KERNELS:  # a graph replay or compiled code hides it: the same network eagerly
        attention = f"{attention_backend(fast.net, x_all[:1])} (eager)"
    rows = []
    for b in batches:
        if time.monotonic() > deadline:
            rows.append({"variant": name, "batch": b, "skipped": "time budget"})
            continue
        x = x_all.repeat((b + len(x_all) - 1) // len(x_all), 1, 1, 1)[:b].contiguous()
        t = median_seconds(lambda: fast(x), dev, args.warmup, args.iterations)
        rows.append({**row(name, b, t, flops, ceiling, agree), "setup_s": setup_s, "attention": attention})
    if opts == SpeedOptions() and prec in args.e2e_precisions:
        rows += e2e_rows(name, fast, frames, dev, args, flops, ceiling, agree, deadline)
        rows += engine_rows(name, prec, fast, frames, dev, args, flops, ceiling, agree, rows, deadline)
    return rows, logits


def row(name: str, batch: int, seconds: float, flops: float, ceiling: float, agree: dict[str, float]) -> dict[str, Any]:
    tflops = batch * flops / seconds / 1e12
    return {
        "variant": name, "batch": batch, "ips": batch / seconds, "ms": seconds * 1e3, "tflops": tflops,
        "ceiling_frac": tflops / ceiling, **{k: agree[k] for k in ("top1", "top5", "max_prob_diff", "logit_rel_err")},
    }


def e2e_rows(
    name: str, fast: PreparedNetwork, frames: Any, dev: torch.device, args: argparse.Namespace,
    flops: float, ceiling: float, agree: dict[str, float], deadline: float = float("inf"),
) -> list[dict[str, Any]]:
    """uint8 host frames -> device -> normalise -> forward -> softmax -> host, pinned and pageable."""
    mean = torch.tensor(RGB_MEAN, device=dev).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(RGB_STD, device=dev).view(1, 3, 1, 1) * 255.0
    out: list[dict[str, Any]] = []
    pinned_modes = (True, False) if dev.type == "cuda" else (False,)
    for b in args.batches:
        src = torch.from_numpy(frames).repeat((b + len(frames) - 1) // len(frames), 1, 1, 1)[:b].contiguous()
        for pinned in pinned_modes:
            variant = f"{name} e2e {'pinned' if pinned else 'pageable'}"
            if time.monotonic() > deadline:
                out.append({"variant": variant, "batch": b, "skipped": "time budget"})
                continue
            host = src.pin_memory() if pinned else src

            def step(host: torch.Tensor = host) -> torch.Tensor:
                x = host.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().sub_(mean).div_(std)
                return fast(x).softmax(1).cpu()

            t = median_seconds(step, dev, args.warmup, args.iterations)
            out.append(row(variant, b, t, flops, ceiling, agree))
    return out


def engine_rows(
    name: str, prec: str, fast: PreparedNetwork, frames: Any, dev: torch.device, args: argparse.Namespace,
    flops: float, ceiling: float, agree: dict[str, float], rows: list[dict[str, Any]],
    deadline: float = float("inf"),
) -> list[dict[str, Any]]:
    """Through the real Engine and tracker thread at each --engine-batches size, against the bare forward."""
    from bench.engine_e2e import through_engine

    info = SimpleNamespace(class_names=[f"species {i:03d}" for i in range(args.classes)], name="bench",
                           sha256="0" * 64, rgb_stats={"mean": list(RGB_MEAN), "std": list(RGB_STD)})
    dtype = DTYPES[prec] or torch.float32
    out: list[dict[str, Any]] = []
    for b in args.engine_batches:
        variant = f"{name} engine"
        if time.monotonic() > deadline:
            out.append({"variant": variant, "batch": b, "skipped": "time budget"})
            continue
        clf = Classifier(fast.net, info, device=dev, dtype=dtype, max_batch=b)
        clf.warm_up(b)
        got = through_engine(clf, frames, streams=args.engine_streams, max_batch=b, seconds=args.engine_seconds,
                             deadline=deadline)
        bare = next((r["ips"] for r in rows if r.get("variant") == name and r.get("batch") == b), None)
        r = row(variant, b, b / got["ips"], flops, ceiling, agree)
        r.update(mean_batch=got["mean_batch"], streams=args.engine_streams,
                 vs_forward=got["ips"] / bare if bare else None)
        out.append(r)
    return out


def format_result(result: dict[str, Any]) -> str:
    m = result["meta"]
    lines = [
        f"{m['device']}  torch {m['torch']}  cuda {m['cuda']}  {m['params_m']:.1f}M params  "
        f"{m['gflop_per_image']:.1f} GFLOP/image  flash attention: {m['flash_attention']}",
        f"matmul ceiling: {m['matmul_ceiling_tflops']:.1f} TFLOP/s",
    ]
    head = ["variant", "batch", "img/s", "ms/batch", "TFLOP/s", "of ceiling", "top1 agree", "top5", "max |dp|",
            "logit rel", "setup s", "attention", "vs forward"]
    table = [head]
    for r in result["rows"]:
        if "skipped" in r:
            table.append([r["variant"], str(r.get("batch", "-")), f"skipped ({r['skipped']})",
                          *[""] * (len(head) - 3)])
            continue
        table.append([
            r["variant"], str(r["batch"]), f"{r['ips']:.1f}", f"{r['ms']:.2f}", f"{r['tflops']:.3g}",
            f"{100 * r['ceiling_frac']:.0f}%", f"{r['top1']:.3f}", f"{r['top5']:.3f}", f"{r['max_prob_diff']:.1e}",
            f"{r['logit_rel_err']:.1e}", f"{r['setup_s']:.1f}" if "setup_s" in r else "",
            r.get("attention", ""), f"{r['vs_forward']:.2f}" if r.get("vs_forward") else "",
        ])
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(t, widths)))
              for t in table]
    lines.append(f"elapsed {result['elapsed_s']:.0f} s")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "tf32", "fp16", "bf16"], choices=list(DTYPES))
    ap.add_argument("--fast-precisions", nargs="+", default=["bf16"], choices=list(DTYPES),
                    help="precisions also run with --cuda-graphs / --compile")
    ap.add_argument("--e2e-precisions", nargs="*", default=["bf16"], choices=list(DTYPES))
    ap.add_argument("--engine-batches", type=int, nargs="*", default=[64],
                    help="max_batch of the engine rows (through Engine + tracker thread)")
    ap.add_argument("--engine-streams", type=int, default=16, help="producer threads of the engine rows")
    ap.add_argument("--engine-seconds", type=float, default=5.0, help="measuring time of each engine row")
    ap.add_argument("--cuda-graphs", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile (compiles once per batch size: slow)")
    ap.add_argument("--compile-batches", type=int, nargs="+", default=[1, 32], help="batch sizes timed compiled")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--images", type=int, default=256, help="images for the agreement measures")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--classes", type=int, default=735)
    ap.add_argument("--head-std", type=float, default=0.2)
    ap.add_argument("--matmul-size", type=int, default=8192)
    ap.add_argument("--budget-s", type=float, default=270, help="skip the remaining variants after this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", type=json.loads, default=None, help="JSON architecture overrides")
    ap.add_argument("--quick", action="store_true", help="tiny model and sizes (a smoke run, e.g. on CPU)")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.config, args.size, args.classes, args.images = TINY, 64, 10, 8
        args.batches, args.iterations, args.warmup, args.matmul_size = [1, 2], 2, 1, 256
        args.compile_batches, args.engine_batches, args.engine_streams, args.engine_seconds = [1], [2], 2, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.stderr.write("bench/gpu.py: CUDA is not available (use --device cpu --quick for a smoke run)\n")
        return 2
    result = run(args, save=lambda partial: write_json(args.out, partial) if args.out else None)
    sys.stdout.write(format_result(result) + "\n")
    return 0


def write_json(path: str, result: dict[str, Any]) -> None:
    """Atomically: a reader (or a run killed mid-write) never sees half a file."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1), encoding="utf-8")
    os.replace(tmp, target)


if __name__ == "__main__":
    raise SystemExit(main())
