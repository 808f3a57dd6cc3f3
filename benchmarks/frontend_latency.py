"""Batch-1 inference latency of Mamba-Spike's spiking front-end: the recurrent block through the
compiled recurrent LIF vs its loop over bins (the reference).

    PYTHONPATH=src python benchmarks/frontend_latency.py [--threads 1 2] [--calls 50] [--input smnist|nmnist]

``smnist``: 784 steps of one pixel (dense front-end, 392 bins reach the recurrent block);
``nmnist``: the N-MNIST recipe's [30, 2, 34, 34] frames. The two paths alternate call by call, so
load from other processes hits both alike; median and 10th percentile in ms.
"""

import argparse
import statistics

import torch

from mambaspike.bench import time_alternating
from mambaspike.bench.inputs import bench_config, bench_input
from mambaspike.models import build_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--input", choices=["smnist", "nmnist"], default="smnist")
    args = ap.parse_args()
    cfg, T = bench_config("mambaspike", args.input)
    torch.manual_seed(0)
    fe = build_model(cfg).eval().frontend
    x = bench_input(cfg, T, 1)
    rec = fe.blocks[-1].lif

    def run(backend):
        rec.backend = backend
        return fe(x)[0]

    paths = {"loop": lambda: run("reference"), "fused": lambda: run("auto")}
    with torch.no_grad():
        same = torch.equal(paths["fused"](), paths["loop"]())
        for threads in args.threads:
            torch.set_num_threads(threads)
            for name, ts in time_alternating(paths, args.calls, warmup=5).items():
                print(f"{args.input}  threads {threads}  {name:5s}  median {statistics.median(ts) * 1e3:7.3f} ms"
                      f"  p10 {ts[len(ts) // 10] * 1e3:7.3f} ms  (identical spikes: {same})")

if __name__ == "__main__":
    main()
