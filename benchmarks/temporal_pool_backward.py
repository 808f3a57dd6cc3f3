"""The temporal max-pool's own backward against autograd's ``amax`` backward, inside a training step.

One Mamba-Spike training step (forward + backward, no optimizer step) at ``--inputs``' shape and
``--batch``, with the front-end's temporal pooling through ``temporal_pool(..., reference=True)``
(``amax``) or through its fast backward, the two alternating step by step in one process
(:func:`mambaspike.bench.time_alternating`) so that other processes' load hits both alike. Prints
the median and fastest step in ms of each; then the same for the pooling alone (forward + backward)
on binary spikes of the first block's output shape.

    PYTHONPATH=src python benchmarks/temporal_pool_backward.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics

import torch

import mambaspike.layers.frontend as frontend
from mambaspike.bench import time_alternating
from mambaspike.bench.inputs import INPUTS, bench_config, bench_input
from mambaspike.layers.pooling import temporal_pool
from mambaspike.models.registry import build_model, loss_and_scores


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", choices=list(INPUTS), default="dvs-motion")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calls", type=int, default=6, help="timed steps of each")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg, T = bench_config("mambaspike", args.inputs)
    torch.manual_seed(0)
    model = build_model(cfg)
    x, y = bench_input(cfg, T, args.batch), torch.zeros(args.batch, dtype=torch.long)

    def reference_pool(a, k, mode="max"):
        return temporal_pool(a, k, mode, reference=True)

    def step(pool):
        frontend.temporal_pool = pool  # the name the front-end calls
        try:
            model.zero_grad(set_to_none=True)
            loss_and_scores(model, x, y)[0].backward()
        finally:
            frontend.temporal_pool = temporal_pool

    times = time_alternating(
        {"amax backward (reference)": lambda: step(reference_pool), "own backward": lambda: step(temporal_pool)},
        calls=args.calls,
        warmup=1,
    )
    print(f"{args.inputs}, batch {args.batch}, {args.threads} thread(s), {args.calls} steps each")
    for name, ts in times.items():
        print(f"step, {name}: median {statistics.median(ts) * 1e3:.1f} ms, fastest {ts[0] * 1e3:.1f} ms")

    with torch.no_grad():
        spikes, _ = model.frontend.blocks[0](x)  # (T, B, C, H, W) binary
    spikes.requires_grad_()
    grad = torch.randn(temporal_pool(spikes.detach(), 2).shape)

    def pool_only(reference: bool):
        spikes.grad = None
        temporal_pool(spikes, model.frontend.temporal_pool, "max", reference=reference).backward(grad)

    times = time_alternating(
        {"amax backward (reference)": lambda: pool_only(True), "own backward": lambda: pool_only(False)},
        calls=4 * args.calls,
        warmup=1,
    )
    print(f"pooling alone on {list(spikes.shape)}, {4 * args.calls} calls each")
    for name, ts in times.items():
        print(f"pool, {name}: median {statistics.median(ts) * 1e3:.1f} ms, fastest {ts[0] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
