"""Batch-1 inference latency of Mamba-Spike's spiking front-end, three ways.

    PYTHONPATH=src python benchmarks/frontend_latency.py [--threads 1 2] [--calls 50] [--input smnist|nmnist]
        [--readout spikes|membrane]

- ``fused``: the whole dense front-end in one compiled call (:mod:`mambaspike.layers.frontend_fused`;
  1-D input only, so ``nmnist`` has no such row);
- ``blocks``: block by block (``forward_reference``), each LIF through its compiled kernel, the
  recurrent block through the compiled recurrent LIF;
- ``loop``: block by block with the recurrent block stepping through its bins in Python (the
  reference of the recurrent LIF).

``smnist``: 784 steps of one pixel (392 bins reach the recurrent block); ``nmnist``: the N-MNIST
recipe's [30, 2, 34, 34] frames. The paths alternate call by call, so load from other processes hits
all alike; median and 10th percentile in ms, whether every path gave the same spikes, and the
output's firing rate (``--readout membrane``: the last block a leaky integrator, its potentials
compared to rounding, and the mean potential instead of a rate). An untrained front-end on random
input barely fires: the fused kernel, which skips zero inputs, is timed at its cheapest;
``smnist_latency_activity.py`` raises the rates.
"""

import argparse

import torch

from mambaspike.bench import alternating_ms
from mambaspike.bench.inputs import bench_config, bench_input
from mambaspike.models.registry import build_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--input", choices=["smnist", "nmnist"], default="smnist")
    ap.add_argument("--readout", choices=["spikes", "membrane"], default="spikes")
    args = ap.parse_args()
    cfg, T = bench_config("mambaspike", args.input, readout=args.readout)
    torch.manual_seed(0)
    fe = build_model(cfg).eval().frontend
    x = bench_input(cfg, T, 1)
    rec = next(b for b in fe.blocks if b.recurrent is not None).lif  # the last spiking block's

    def blocks(backend):
        rec.backend = backend
        try:
            return fe.forward_reference(x)[0]
        finally:
            rec.backend = "auto"

    paths = {"blocks": lambda: blocks("auto"), "loop": lambda: blocks("reference")}
    if not cfg.spatial:
        paths = {"fused": lambda: fe(x)[0], **paths}
    with torch.no_grad():
        outs = [f() for f in paths.values()]
        if args.readout == "membrane":
            same = all(torch.allclose(o, outs[0], rtol=0, atol=1e-5) for o in outs)
        else:
            same = all(torch.equal(o, outs[0]) for o in outs)
        rate = float(outs[0].mean())
        for threads, name, med, p10 in alternating_ms(paths, args.threads, args.calls, warmup=5):
            print(
                f"{args.input}  threads {threads}  {name:6s}  median {med:7.3f} ms  p10 {p10:7.3f} ms"
                f"  (same output: {same}, output mean {rate:.3f})"
            )


if __name__ == "__main__":
    main()
