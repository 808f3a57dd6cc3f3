"""``mambaspike bench model``: training throughput and batch-1 latency of every model family.

One row per (input, model): ``input`` (``smnist``: 784 steps x 1 feature; ``nmnist``: the N-MNIST
recipe's [30, 2, 34, 34]; ``dvs-motion`` / ``dvs-motion-32``: DVS-Motion's [20, 2, 128, 128] and the
CPU recipe's [20, 2, 32, 32], on request), ``model``, ``params``, ``train_samples_per_s`` (forward + backward +
AdamW step at ``--batch``), ``latency_ms`` (batch-1 eval forward, no grad), on ``--device`` (CUDA
timings synchronise the device). The LSTM/GRU hidden sizes are matched to the Mamba backbone's
parameter count. The models are untrained and the input random, so an untrained spiking front-end
hardly fires (its compiled inference kernel skips zero inputs): ``benchmarks/smnist_latency_activity.py``
measures Mamba-Spike's latency as its firing rates rise.
"""

from __future__ import annotations

import argparse

import torch

from mambaspike.bench import time_it
from mambaspike.bench.inputs import INPUTS, bench_config, bench_input
from mambaspike.models.registry import build_model, count_parameters, loss_and_scores, model_names

DESCRIPTION = "models: training samples/s and batch-1 latency (ms) at matched parameter counts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        nargs="+",
        choices=model_names(),
        default=["mambaspike", "mamba", "lstm", "gru"],
        help="model families (default: Mamba-Spike and its three baselines)",
    )
    p.add_argument("--inputs", nargs="+", choices=list(INPUTS), default=["smnist", "nmnist"])
    p.add_argument("--batch", type=int, default=16, help="training batch size")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median)")
    p.add_argument("--no-train", action="store_true", help="only measure latency")
    p.add_argument("--T", type=int, default=None, help="override the number of time bins")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")


def run(args):
    from mambaspike.training.distributed import resolve_device

    device = resolve_device(args.device)
    for input_name in args.inputs:
        for name in args.models:
            cfg, T = bench_config(name, input_name)
            T = args.T or T
            torch.manual_seed(0)
            model = build_model(cfg).to(device)
            row = {"input": input_name, "T": T, "model": name, "params": count_parameters(model), "device": str(device)}
            if not args.no_train:
                x = bench_input(cfg, T, args.batch).to(device)
                y = torch.randint(0, cfg.num_classes, (args.batch,)).to(device)
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
                model.train()

                def train_step(model=model, opt=opt, x=x, y=y):
                    opt.zero_grad(set_to_none=True)
                    loss_and_scores(model, x, y)[0].backward()
                    opt.step()

                row["train_samples_per_s"] = args.batch / time_it(train_step, repeats=args.repeats, device=device)
            model.eval()
            x1 = bench_input(cfg, T, 1).to(device)

            def infer(model=model, x1=x1):
                with torch.no_grad():
                    model(x1)

            row["latency_ms"] = 1e3 * time_it(infer, repeats=args.repeats, device=device)
            yield row
