"""CPU speed options on the full model: images/s and agreement with fp32, measured in one run.

    PYTHONPATH=. python bench/cpu.py                       # full 18x2 model, 735 classes, 384x384
    PYTHONPATH=. python bench/cpu.py --threads 2 --images 64 --batch 1 4 --iterations 5
    PYTHONPATH=. python bench/cpu.py --weights model.pt --image-dir photos/   # a real checkpoint and photos

Every option (fp32 Birder-layout, fp32 fused, int8 dynamic, bf16 autocast where the CPU has it,
lower input sizes, combinations) runs the same images. Speed is the median of ``--iterations``
rounds after ``--warmup``; each round times every option once, in an order rotated each round. The
ratio columns are against fp32 fused and against fp32 Birder-layout (what ``model.quantize: none``
runs on a CPU), the latter paired per round with its quartiles.
Agreement is against fp32 fused at full size on ``--images`` images: top-1 agreement, mean top-5
overlap, max |probability difference| and the relative logit error. Without ``--weights`` the
network has seeded random weights and the images are synthetic: agreement then shows how much an
option perturbs a network of this shape, not the accuracy change on real birds (and a lower input
size looks worse than it is: random position embeddings do not interpolate like trained ones).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from birdstream.model.api import choose_layout
from birdstream.model.speed import SpeedOptions, configure_threads, prepare_network
from birdstream.model.synthetic import RGB_MEAN, RGB_STD, agreement, natural_images, random_network, to_input
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


def make_net(base: ViTParallel, spec: dict[str, Any]) -> tuple[Callable[[torch.Tensor], torch.Tensor], tuple[int, int]]:
    net = copy.deepcopy(base)
    net.autocast_dtype = spec["dtype"]
    # As the loader runs it on a CPU (oneDNN matmuls in fp32), with the layout forced.
    choose_layout(net, torch.device("cpu"), spec["dtype"] or torch.float32, fuse=spec["fuse"])
    prepared = prepare_network(net, SpeedOptions(quantize=spec["quantize"], input_size=spec["size"]))
    return prepared, prepared.input_size


def load_inputs(args: argparse.Namespace) -> tuple[ViTParallel, np.ndarray, tuple[float, ...], tuple[float, ...]]:
    """The network (a checkpoint's or random) and uint8 images [N, S, S, 3] at its size."""
    if args.weights:
        from birdstream.model.api import load_pretrained_model

        base, info = load_pretrained_model(args.weights, device="cpu", fuse=False)
        mean, std = tuple(info.rgb_stats["mean"]), tuple(info.rgb_stats["std"])
    else:
        base = random_network(args.classes, (args.size, args.size), args.config, seed=args.seed, head_std=args.head_std)
        mean, std = RGB_MEAN, RGB_STD
    size = base.size
    if args.image_dir:
        from PIL import Image

        paths = sorted(p for p in Path(args.image_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not paths:
            raise SystemExit(f"{args.image_dir}: no .jpg/.jpeg/.png images")
        images = np.stack([
            np.asarray(Image.open(p).convert("RGB").resize((size[1], size[0]), Image.BICUBIC), dtype=np.uint8)
            for p in paths[: args.images]
        ])
    else:
        images = natural_images(args.images, size, seed=args.seed + 1)
    return base, images, mean, std


def run(args: argparse.Namespace) -> dict[str, Any]:
    configure_threads(args.threads)
    base, images, mean, std = load_inputs(args)
    bf16 = args.bf16 and bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    options = build_options(args.sizes, bf16)
    nets = {name: make_net(base, spec) for name, spec in options.items()}
    inputs: dict[tuple[int, int], torch.Tensor] = {}

    def batch_of(hw: tuple[int, int], n: int) -> torch.Tensor:
        if hw not in inputs:
            inputs[hw] = to_input(images, hw, mean, std)
        x = inputs[hw]
        return x[:n] if n <= x.shape[0] else x.repeat((n + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:n]

    logits = {}
    for name, (net, hw) in nets.items():
        if name == "fp32 birder-layout":
            continue  # equal to fp32 fused within 1e-6 (tests/model/test_parity.py): timed only
        x = batch_of(hw, len(images))
        logits[name] = torch.cat([net(x[i : i + 4]) for i in range(0, x.shape[0], 4)])
    ref = logits["fp32 fused"]
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "images": len(images),
                              "weights": args.weights or "random", "options": {}}
    for name in nets:
        result["options"][name] = {"agreement": agreement(ref, logits[name]) if name in logits else None, "ips": {}}
    names = list(nets)
    for batch in args.batch:
        times: dict[str, list[float]] = {name: [] for name in nets}
        for it in range(args.warmup + args.iterations):
            shift = it % len(names)  # rotate the order: each option takes each position in turn
            for name in names[shift:] + names[:shift]:
                net, hw = nets[name]
                x = batch_of(hw, batch)
                t0 = time.perf_counter()
                net(x)
                if it >= args.warmup:
                    times[name].append(time.perf_counter() - t0)
        layout = times["fp32 birder-layout"]
        for name in nets:
            result["options"][name]["ips"][batch] = batch / statistics.median(times[name])
            # Paired per round against the fp32 default: a burst of load hits both timings alike.
            paired = [t_ref / t for t_ref, t in zip(layout, times[name])]
            q = statistics.quantiles(paired, n=4, method="inclusive") if len(paired) > 1 else [paired[0]] * 3
            result["options"][name].setdefault("vs_layout", {})[batch] = [statistics.median(paired), q[0], q[2]]
    return result


def format_result(result: dict[str, Any], batches: list[int]) -> str:
    opts = result["options"]
    fused = opts["fp32 fused"]["ips"]
    head = ["option"] + [f"img/s b{b}" for b in batches] + [f"x fused b{b}" for b in batches]
    head += [f"x layout b{b} [quartiles]" for b in batches] + ["top1 agree", "top5 overlap", "max |dp|", "logit rel",
                                                 "flip gap"]
    rows = [head]
    for name, r in opts.items():
        a = r["agreement"]
        rows.append(
            [name] + [f"{r['ips'][b]:.3f}" for b in batches] + [f"{r['ips'][b] / fused[b]:.2f}" for b in batches]
            + ["{:.2f}[{:.2f}-{:.2f}]".format(*r["vs_layout"][b]) for b in batches]
            + ([f"{a['top1']:.3f}", f"{a['top5']:.3f}", f"{a['max_prob_diff']:.1e}", f"{a['logit_rel_err']:.1e}",
                f"{a['flip_max_gap']:.1e}"] if a else ["-"] * 5)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    ref_p = opts["fp32 fused"]["agreement"]["ref_max_prob"]
    lines.append(f"threads {result['threads']}; {result['images']} images; weights: {result['weights']}; "
                 f"reference mean top-1 probability {ref_p:.3f}, median top-1/top-2 gap "
                 f"{opts['fp32 fused']['agreement']['median_gap']:.1e} (flip gap: the largest gap among flipped images)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--images", type=int, default=64, help="images for the agreement measures")
    ap.add_argument("--weights", default=None, help="a Birder .pt checkpoint instead of random weights")
    ap.add_argument("--image-dir", default=None, help="a folder of photos instead of synthetic images")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--iterations", type=int, default=5)
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
