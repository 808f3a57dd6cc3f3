"""Batch-1 inference latency of trained checkpoints, measured alternately in one process.

Each round runs every model once on the same test sample (eight samples in turn), so a machine that
gets busier or quieter mid-run slows every model alike; the first rounds are warm-up. Prints the median
milliseconds per sample of each run directory and its ratio to the first one given.

    PYTHONPATH=src python benchmarks/batch1_latency.py study/runs/ndigits-mamba-seed0 \
        study/runs/ndigits-mambaspike-seed0 study/runs/ndigits-mambaspike-lif-seed0 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories of one data set (the first is the reference)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=40, help="timed rounds (after 8 warm-up rounds)")
    args = p.parse_args(argv)
    import torch

    from mambaspike.bench import time_alternating
    from mambaspike.data import collate_time_first
    from mambaspike.training.run import load_run

    torch.set_num_threads(args.threads)
    runs = [load_run(d) for d in args.runs]
    test = runs[0].data("test")
    xs = [collate_time_first([test[i]])[0] for i in range(min(8, len(test)))]

    def rounds(model):  # one call per round, on the round's sample
        calls = iter(range(1 << 62))
        return lambda: model(xs[next(calls) % len(xs)])

    with torch.no_grad():
        fns = {d: rounds(r.model()) for d, r in zip(args.runs, runs)}
        times = time_alternating(fns, calls=args.rounds, warmup=8)
    med = [statistics.median(times[d]) * 1e3 for d in args.runs]
    print(f"batch 1, {args.threads} thread(s), input {tuple(xs[0].shape)}, median of {args.rounds} alternating rounds")
    for d, ms in zip(args.runs, med):
        print(f"{Path(d).name}: {ms:.2f} ms ({ms / med[0]:.2f}x the first)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
