"""``mambaspike bench model``: training throughput and batch-1 latency of every model family.

One row per (input, model): ``input`` (``smnist``: 784 steps x 1 feature; ``nmnist``: the N-MNIST
recipe's [30, 2, 34, 34]; ``dvs-motion`` / ``dvs-motion-32``: DVS-Motion's [20, 2, 128, 128] and the
CPU recipe's [20, 2, 32, 32], on request), ``model``, ``params``, ``train_samples_per_s`` (forward + backward +
AdamW step at ``--batch``), ``latency_ms`` (batch-1 eval forward, no grad), on ``--device`` (CUDA
timings synchronise the device). The LSTM/GRU hidden sizes are matched to the Mamba backbone's
parameter count. The models are untrained and the input random, so an untrained spiking front-end
hardly fires (its compiled inference kernel skips zero inputs): ``benchmarks/smnist_latency_activity.py``
measures Mamba-Spike's latency as its firing rates rise.

``--stages`` adds, for Mamba-Spike and the three baselines, the fraction of one training step
(forward + backward, no optimizer step) spent in each stage (``frac_<stage>``; :mod:`mambaspike.bench.stages`
says how it is measured: profiler ranges around the stage modules' forward calls, backward nodes
attributed to the stage that created them), the profiled step's wall time ``profiled_step_ms``, the
convolutions' achieved rate ``conv_gmacs`` (forward + backward multiply-accumulates of the ``Conv2d``
layers over their measured time, GMAC/s) and the fp32 GEMM rate ``gemm_gmacs`` of a square
``torch.matmul`` measured in the same run on the same threads, and their ratio ``conv_vs_gemm``.
"""

from __future__ import annotations

import argparse

import torch

from mambaspike.bench import time_it
from mambaspike.bench.inputs import INPUTS, bench_config, bench_input
from mambaspike.errors import ConfigError
from mambaspike.models.registry import build_model, count_parameters, loss_and_scores, model_names

STAGE_MODELS = {"mambaspike", "mamba", "lstm", "gru"}  # the families --stages breaks down
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
    p.add_argument(
        "--stages",
        action="store_true",
        help="also profile one training step per model: fraction of it in each stage, conv GMAC/s vs fp32 GEMM",
    )


def _stage_columns(model, x, y, repeats: int, gemm: float) -> dict:
    from mambaspike.bench.stages import conv_macs, stage_modules, stage_profile

    def step():
        model.zero_grad(set_to_none=True)
        loss_and_scores(model, x, y)[0].backward()

    prof = stage_profile(model, step, repeats=repeats)
    cols = {"profiled_step_ms": prof["step_ms"]}
    for k, v in prof.items():
        if k != "step_ms":
            cols["frac_" + k[: -len("_ms")]] = v / prof["step_ms"]
    macs = conv_macs(model, stage_modules(model), lambda: loss_and_scores(model, x, y))
    conv_s = prof.get("conv_ms", 0.0) / 1e3
    cols["conv_gmacs"] = macs / conv_s / 1e9 if macs and conv_s > 0 else None
    cols["gemm_gmacs"] = gemm
    cols["conv_vs_gemm"] = cols["conv_gmacs"] / gemm if cols["conv_gmacs"] is not None else None
    return cols


def run(args):
    from mambaspike.training.distributed import resolve_device

    device = resolve_device(args.device)
    if args.stages and (args.no_train or device.type != "cpu"):
        got = "--no-train" if args.no_train else f"--device {args.device}"
        raise ConfigError(
            f"bench model --stages: profiles a CPU training step, got {got}; accepted: --device cpu without --no-train"
        )
    if args.stages and not set(args.models) <= STAGE_MODELS:
        bad = sorted(set(args.models) - STAGE_MODELS)
        raise ConfigError(
            f"bench model --stages: no stage breakdown for {', '.join(bad)}; "
            f"accepted: {', '.join(sorted(STAGE_MODELS))}"
        )
    gemm = None
    if args.stages:
        from mambaspike.bench.stages import gemm_gmacs

        gemm = gemm_gmacs()
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
                if args.stages:
                    row.update(_stage_columns(model, x, y, args.repeats, gemm))
            model.eval()
            x1 = bench_input(cfg, T, 1).to(device)

            def infer(model=model, x1=x1):
                with torch.no_grad():
                    model(x1)

            row["latency_ms"] = 1e3 * time_it(infer, repeats=args.repeats, device=device)
            yield row
