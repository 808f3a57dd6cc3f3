"""Batch-1 latency on the 784-step input as Mamba-Spike's front-end fires more.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/smnist_latency_activity.py [--repeats 200]
    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/smnist_latency_activity.py

``mambaspike bench model --inputs smnist`` times untrained models on random pixels, and there the
spiking front-end hardly fires (a LIF with tau = 30 bins low-pass filters white noise far below its
threshold). Its compiled kernel only does work for non-zero inputs, so that is its cheapest case.
This script puts the front-end's BatchNorm statistics on the benchmark data (a few training-mode
forwards, cumulative averages) and then raises the BN shift of every block in steps, which raises
every layer's firing rate; for each step it prints the firing rate of each block and the batch-1
latency (median of ``--repeats`` calls, ``mambaspike.bench.time_it``) next to the LSTM, GRU and
Mamba baselines of ``bench model`` (same shapes, matched parameter counts, timed the same way).

One thread count per process, set through ``OMP_NUM_THREADS`` (not ``torch.set_num_threads``): on
our 2-core machine, after ``torch.set_num_threads(2)`` or after a GRU has run, every model runs
slower for the rest of the process (Mamba-Spike 1.9 -> 2.4 ms, LSTM 2.1 -> 3.9 ms). So the LSTM is
timed first and again after the Mamba-Spike rows (a changed mode would show as a changed LSTM time),
and the GRU last.
"""

import argparse

import torch

from mambaspike.bench import time_it
from mambaspike.bench.inputs import bench_config, bench_input
from mambaspike.models.registry import build_model

SHIFTS = (None, 0.0, 1.0, 2.0, 4.0, 8.0)  # None: as initialised (what bench model times)


def rates(model, x) -> list[float]:
    """Mean firing rate of each front-end block on ``x`` (reference path, hooks on the LIFs)."""
    out = []
    hooks = [b.lif.register_forward_hook(lambda m, a, o: out.append(float(o[0].mean()))) for b in model.frontend.blocks]
    try:
        model.frontend.forward_reference(x)
    finally:
        for h in hooks:
            h.remove()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    cfg, T = bench_config("mambaspike", "smnist")
    x = bench_input(cfg, T, 1)

    def baseline(name):
        c, _ = bench_config(name, "smnist")
        torch.manual_seed(0)
        m = build_model(c).eval()
        print(f"threads {threads}  {name:10s}  {1e3 * time_it(lambda: m(x), repeats=args.repeats, warmup=20):6.3f} ms")

    with torch.no_grad():
        baseline("lstm")
        baseline("mamba")
        for shift in SHIFTS:
            torch.manual_seed(0)
            ms = build_model(cfg)
            if shift is not None:
                ms.train()
                for m in ms.frontend.modules():
                    if isinstance(m, torch.nn.BatchNorm1d):
                        m.momentum = None  # cumulative average over the calibration batches
                for i in range(20):
                    ms.frontend(bench_input(cfg, T, 8, seed=i + 1))
                for b in ms.frontend.blocks:
                    b.bn.bias.fill_(shift)
            ms.eval()
            r = ", ".join(f"{v:.3f}" for v in rates(ms, x))
            label = "as initialised" if shift is None else f"BN shift {shift:g}"
            ms_t = 1e3 * time_it(lambda ms=ms: ms(x), repeats=args.repeats, warmup=20)
            print(f"threads {threads}  mambaspike  {ms_t:6.3f} ms  ({label}; block firing rates {r})")
        baseline("lstm")
        baseline("gru")


if __name__ == "__main__":
    main()
