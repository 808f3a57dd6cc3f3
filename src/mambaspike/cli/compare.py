"""``mambaspike compare``: Mamba-Spike and baselines over seeds, one budget, one table."""

from __future__ import annotations

import argparse
from pathlib import Path

from mambaspike.cli.options import add_budget, budget_config, name_list, set_threads
from mambaspike.errors import ConfigError

HELP = "train (or reuse) Mamba-Spike and baselines over seeds and write the paper-style table"


def add_parser(sub) -> argparse.ArgumentParser:
    from mambaspike.models.registry import model_names

    c = sub.add_parser(
        "compare",
        help=HELP,
        description="Train every --models x --seeds run with one budget into OUTPUT_DIR/runs/ (finished runs are "
        "reused), or take --runs as they are, and write compare.md/.csv/.png: accuracy, macro-F1, batch-1 latency, "
        "spikes per sample, energy estimate, mean ± std over seeds.",
    )
    add_budget(c)
    from mambaspike.lab.compare import DEFAULT_MODELS
    from mambaspike.models.config import VARIANTS

    c.add_argument(
        "--models",
        type=name_list,
        default=DEFAULT_MODELS,
        metavar="M,...",
        help=f"model families (of {', '.join(model_names())}) or named variants of one ({', '.join(VARIANTS)}: "
        "the paper's front-end; the previous default, LIF neurons and per-feature rate normalisation; the "
        "membrane readout, max-pooled)",
    )
    c.add_argument("--runs", nargs="+", default=None, metavar="DIR", help="tabulate these run directories, no training")
    return c


def run(args: argparse.Namespace) -> int:
    from mambaspike.lab.compare import compare
    from mambaspike.models.config import VARIANTS
    from mambaspike.models.registry import model_names

    set_threads(args)
    known = [*model_names(), *VARIANTS]
    bad = [m for m in args.models if m not in known]
    if bad:
        raise ConfigError(f"--models: unknown model(s) {', '.join(bad)}; available: {', '.join(known)}")
    compare(
        args.output_dir,
        budget_config(args),
        models=args.models,
        seeds=args.seeds,
        run_dirs=args.runs,
        latency_repeats=args.latency_repeats,
    )
    print((Path(args.output_dir) / "compare.md").read_text())
    return 0
