"""Model throughput on this machine: birdstream's forward vs Birder's own, measured in the same run.

Run with an interpreter that has torch (and birder, for the Birder column), from the repository root:

    PYTHONPATH=. python bench/model.py --batch 1 2 4 --iterations 3
    PYTHONPATH=. python bench/model.py --device cuda --precision bf16 --batch 8 32 64 --iterations 20

Prints images/s per batch size and the ratio (higher is better; >= 1.0 means at least Birder's speed).
"""

from __future__ import annotations

import argparse
import logging
import sys

from birdstream.model.bench import format_table, run_bench


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--size", type=int, default=384, help="square input side")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--no-birder", action="store_true", help="skip Birder even if importable")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = run_bench(
        args.batch, iterations=args.iterations, warmup=args.warmup, device=args.device,
        precision=args.precision, size=(args.size, args.size), compare_birder=not args.no_birder,
    )
    sys.stdout.write(format_table(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
