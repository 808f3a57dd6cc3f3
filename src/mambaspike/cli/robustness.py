"""``mambaspike robustness``: accuracy against perturbation level for one or more runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from mambaspike.cli.options import add_threads, float_list, name_list, positive_int, set_threads

HELP = "accuracy against perturbation level (event drop, noise, jitter) for one or more checkpoints"


def add_parser(sub) -> argparse.ArgumentParser:
    from mambaspike.evaluation.robustness import DEFAULT_LEVELS, LEVEL_UNITS, PERTURBATIONS

    r = sub.add_parser(
        "robustness",
        help=HELP,
        description="Evaluate each run's validation-selected checkpoint on its test split under each perturbation "
        "and level; perturbations act on the binned frames (see mambaspike.evaluation.robustness). "
        "Writes robustness.csv, "
        "robustness.md and robustness.png (one curve per checkpoint). Levels: "
        + "; ".join(
            f"{k}: {LEVEL_UNITS[k]}, default {','.join(f'{v:g}' for v in DEFAULT_LEVELS[k])}" for k in PERTURBATIONS
        ),
    )
    r.add_argument("--checkpoint", required=True, nargs="+", metavar="DIR", help="run directories")
    r.add_argument("--output-dir", required=True, metavar="DIR", help="where the table and plot go")
    r.add_argument(
        "--perturbations",
        type=name_list,
        default=None,
        metavar="NAME,...",
        help=f"subset of {', '.join(PERTURBATIONS)} (default: the event ones for event input, else gaussian)",
    )
    for k in PERTURBATIONS:
        r.add_argument(
            f"--{k.replace('_', '-')}-levels",
            dest=f"levels_{k}",
            type=float_list,
            default=None,
            metavar="L,L,...",
            help=f"levels of {k} ({LEVEL_UNITS[k]})",
        )
    r.add_argument("--seed", type=int, default=0, help="seed of the perturbations")
    r.add_argument("--subset", type=positive_int, default=None, metavar="N", help="first N test samples only")
    r.add_argument("--batch-size", type=positive_int, default=64)
    r.add_argument("--data-dir", default=None, help="data directory (default: the one each run used)")
    add_threads(r)
    return r


def run(args: argparse.Namespace) -> int:
    from mambaspike.evaluation.robustness import PERTURBATIONS, robustness

    set_threads(args)
    levels = {k: getattr(args, f"levels_{k}") for k in PERTURBATIONS if getattr(args, f"levels_{k}") is not None}
    robustness(
        args.checkpoint,
        args.output_dir,
        perturbations=args.perturbations,
        levels=levels,
        seed=args.seed,
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        subset=args.subset,
    )
    print((Path(args.output_dir) / "robustness.md").read_text())
    return 0
