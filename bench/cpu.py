"""CPU speed options on the full model: images/s and agreement with fp32, measured in one run.

    PYTHONPATH=. python bench/cpu.py                       # full 18x2 model, 735 classes, 384x384
    PYTHONPATH=. python bench/cpu.py --threads 2 --images 32 --batch 1 4 --iterations 3

Every option (fp32 Birder-layout, fp32 fused, int8 dynamic, bf16 autocast where the CPU has it,
lower input sizes, combinations) runs the same natural-looking synthetic images. Speed is the median
of ``--iterations`` timed calls, interleaved across options so a busy machine slows all alike; the
ratio column is against the fp32 fused path (what ``model.quantize: none`` runs) measured here.
Agreement is against fp32 Birder-layout at 384 on ``--images`` images: top-1 agreement, mean top-5
overlap and max |probability difference|. The network has seeded random weights (no real
checkpoint here): agreement shows how much each option perturbs the outputs of a network of this
shape, not the accuracy change on real birds.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from birdstream.model.speed import SpeedOptions, configure_threads, prepare_network
from birdstream.model.synthetic import agreement, natural_images, random_network, to_input
from birdstream.model.vit_parallel import ViTParallel


def build_options(sizes: list[int], bf16: bool) -> dict[str, dict[str, Any]]:
    """Option name -> {fuse, quantize, size, dtype}."""
    opts: dict[str, dict[str, Any]] = {
        "fp32 birder-layout": {"fuse": False, "quantize": "none", "size": None, "dtype": None},
        "fp32 fused": {"fuse": True, "quantize": "none", "size": None, "dtype": None},
        "int8 dynamic": {"fuse": True, "quantize": "int8", "size": None, "dtype": None},
    }
    if bf16:
        opts["bf16 autocast"] = {"fuse": True, "quantize": "none", "size": None, "dtype": torch.bfloat16}
    for s in sizes:
        opts[f"fp32 fused {s}"] = {"fuse": True, "quantize": "none", "size": s, "dtype": None}
        opts[f"int8 {s}"] = {"fuse": True, "quantize": "int8", "size": s, "dtype": None}
    return opts


def make_net(base: ViTParallel, spec: dict[str, Any]) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    net = copy.deepcopy(base)
    net.autocast_dtype = spec["dtype"]
    if spec["fuse"]:
        net.fuse()
    prepared = prepare_network(net, SpeedOptions(quantize=spec["quantize"], input_size=spec["size"]))
    return prepared, prepared.input_size[0]


def run(args: argparse.Namespace) -> dict[str, Any]:
    configure_threads(args.threads)
    size = (args.size, args.size)
    base = random_network(args.classes, size, args.config, seed=args.seed, head_std=args.head_std)
    images = natural_images(args.images, size, seed=args.seed + 1)
    bf16 = args.bf16 and bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    options = build_options(args.sizes, bf16)
    nets = {name: make_net(base, spec) for name, spec in options.items()}
    inputs: dict[int, torch.Tensor] = {}

    def batch_of(side: int, n: int) -> torch.Tensor:
        if side not in inputs:
            inputs[side] = to_input(images, (side, side))
        x = inputs[side]
        return x[:n] if n <= x.shape[0] else x.repeat((n + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:n]

    probs = {}
    for name, (net, side) in nets.items():
        x = batch_of(side, args.images)
        probs[name] = torch.cat([net(x[i : i + 4]).softmax(1) for i in range(0, x.shape[0], 4)])
    ref = probs["fp32 birder-layout"]
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "options": {}}
    for name in nets:
        result["options"][name] = {"agreement": agreement(ref, probs[name]), "ips": {}}
    for batch in args.batch:
        times: dict[str, list[float]] = {name: [] for name in nets}
        for it in range(args.warmup + args.iterations):
            for name, (net, side) in nets.items():
                x = batch_of(side, batch)
                t0 = time.perf_counter()
                net(x)
                if it >= args.warmup:
                    times[name].append(time.perf_counter() - t0)
        for name in nets:
            result["options"][name]["ips"][batch] = batch / statistics.median(times[name])
    return result


def format_result(result: dict[str, Any], batches: list[int]) -> str:
    opts = result["options"]
    base = opts["fp32 fused"]["ips"]
    head = ["option"] + [f"img/s b{b}" for b in batches] + [f"x fused b{b}" for b in batches]
    head += ["top1 agree", "top5 overlap", "max |dp|"]
    rows = [head]
    for name, r in opts.items():
        a = r["agreement"]
        rows.append(
            [name] + [f"{r['ips'][b]:.3f}" for b in batches] + [f"{r['ips'][b] / base[b]:.2f}" for b in batches]
            + [f"{a['top1']:.3f}", f"{a['top5']:.3f}", f"{a['max_prob_diff']:.1e}"]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    ref_p = next(iter(opts.values()))["agreement"]["ref_max_prob"]
    lines.append(f"threads {result['threads']}; reference mean top-1 probability {ref_p:.3f} (random weights)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--images", type=int, default=32, help="images for the agreement measures")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="*", default=[320, 288, 256], help="lower input sizes to try")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--classes", type=int, default=735)
    ap.add_argument("--head-std", type=float, default=0.2, help="random head scale (peakier probabilities)")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", help="skip bf16 autocast")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", type=json.loads, default=None, help="JSON architecture overrides (tests)")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    result = run(args)
    sys.stdout.write(format_result(result, args.batch) + "\n")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
