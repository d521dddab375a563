"""Model throughput on this machine: birdstream's forward (both layouts) vs Birder's own, in the same run.

Run with an interpreter that has torch (and birder, for the Birder column), from the repository root:

    PYTHONPATH=. python bench/model.py --batch 1 2 4 --iterations 15
    PYTHONPATH=. python bench/model.py --device cuda --precision bf16 --batch 8 32 64 --iterations 20

Every path is warmed up, then timed in short rounds that alternate the implementations (the order
rotates each round), so load from other work on a shared machine falls on all of them alike. Prints
images/s per batch size as median [quartiles], the ratio against Birder paired per round, by wall
time and by process CPU time (steadier when other work takes the cores), the largest logit
difference, and the threads and load average the run saw, before and after.
"""

from __future__ import annotations

import argparse
import logging
import sys

from birdstream.model.bench import format_table, machine_line, run_bench, table_note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--iterations", type=int, default=15, help="alternating rounds per batch size")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--size", type=int, default=384, help="square input side")
    ap.add_argument("--layers", type=int, default=None, help="fewer blocks for a quicker look (default: all 18)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, one per core)")
    ap.add_argument("--no-birder", action="store_true", help="skip Birder even if importable")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    sys.stdout.write("before: " + machine_line(args.device) + "\n")
    rows = run_bench(
        args.batch, iterations=args.iterations, warmup=args.warmup, device=args.device,
        precision=args.precision, size=(args.size, args.size), compare_birder=not args.no_birder,
        config={"num_layers": args.layers} if args.layers else None,
    )
    sys.stdout.write(format_table(rows) + "\n" + table_note(rows) + "\n")
    sys.stdout.write("after: " + machine_line(args.device) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
