"""``mambaspike sweep``: the Spiking Mamba paper's hyper-parameter grid (Table 1)."""

from __future__ import annotations

import argparse
import sys

from mambaspike.cli.options import add_dataset, add_threads, positive_float, positive_int

HELP = "run the Spiking Mamba paper's hyper-parameter ablation grid (Table 1) and tabulate it"


def add_parser(sub) -> argparse.ArgumentParser:
    from mambaspike.lab.sweep import GRIDS

    w = sub.add_parser(
        "sweep",
        help=HELP,
        description="Train the spiking-mamba model once per row of the paper's MNIST ablation grid "
        "(channels, time steps, patchifier blocks, block composition, state size) on --dataset and "
        "write sweep.csv and sweep.md (parameters, training time, test accuracy) to --output-dir.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_dataset(w, "digits")
    w.add_argument("--grid", default="paper", choices=sorted(GRIDS), help="'paper': Table 1; 'tiny': a smoke test")
    w.add_argument("--epochs", type=positive_int, default=2, help="epochs per run (paper: 2)")
    w.add_argument("--batch-size", type=positive_int, default=256, help="batch size (paper: 256)")
    w.add_argument("--lr", type=positive_float, default=2e-3, help="peak learning rate")
    w.add_argument("--embed-dim", type=positive_int, default=64, help="embedding size (paper: 64)")
    w.add_argument("--subset", type=positive_int, default=None, metavar="N", help="at most N samples per split")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--data-dir", default=None, help="where data sets live")
    w.add_argument("--output-dir", default="outputs/sweep", help="where the tables and the runs go")
    add_threads(w)
    return w


def run(args: argparse.Namespace) -> int:
    from mambaspike.lab.sweep import run_sweep

    try:
        run_sweep(
            args.dataset,
            args.output_dir,
            grid=args.grid,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            embed_dim=args.embed_dim,
            seed=args.seed,
            subset=args.subset,
            data_dir=args.data_dir,
            threads=args.threads,
        )
    except KeyboardInterrupt:
        print(f"stopped; the rows finished so far are in {args.output_dir}/sweep.csv", file=sys.stderr)
        return 130
    print(f"wrote {args.output_dir}/sweep.csv and {args.output_dir}/sweep.md")
    return 0
