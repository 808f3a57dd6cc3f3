"""``mambaspike bench stream``: streaming inference one time bin at a time (batch 1, eval mode).

One row per model: ``ms_per_bin`` (wall time of ``step`` per input bin, ``finish`` included,
averaged over the sequence; median of ``--repeats`` streams), ``max_abs_diff`` (largest |difference|
of the streamed logits to the full-sequence forward), ``state_kb`` (size of the carried state).
"""

from __future__ import annotations

import argparse
import time

import torch

from mambaspike.bench.inputs import INPUTS, bench_config, bench_input
from mambaspike.models.registry import build_model, model_names

DESCRIPTION = "streaming: ms per time bin (batch 1) and max |difference| to the full forward"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", choices=model_names(), default=["mambaspike"])
    p.add_argument("--input", choices=list(INPUTS), default="nmnist")
    p.add_argument("--repeats", type=int, default=5, help="streams timed (median)")
    p.add_argument("--T", type=int, default=None, help="override the number of time bins")


def _state_bytes(s) -> int:
    if isinstance(s, torch.Tensor):
        return s.numel() * s.element_size()
    if isinstance(s, (tuple, list)):
        return sum(_state_bytes(v) for v in s)
    return 0


def run(args):
    for name in args.models:
        cfg, T = bench_config(name, args.input)
        T = args.T or T
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        x = bench_input(cfg, T, 1)
        with torch.no_grad():
            full = model(x)
        times = []
        for _ in range(args.repeats + 1):  # the first is warm-up
            state = None
            t0 = time.perf_counter()
            with torch.no_grad():
                for x_t in x.unbind(0):
                    _, state = model.step(x_t, state)
                out = model.finish(state)
            times.append(time.perf_counter() - t0)
        times = sorted(times[1:])
        yield {
            "model": name,
            "input": args.input,
            "T": T,
            "ms_per_bin": 1e3 * times[len(times) // 2] / T,
            "max_abs_diff": float((out - full).abs().max()),
            "state_kb": _state_bytes(state) / 1024,
        }
