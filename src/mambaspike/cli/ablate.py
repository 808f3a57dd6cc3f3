"""``mambaspike ablate``: the paper's ablations (spiking front-end; neuron model x tau)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mambaspike.cli.options import add_budget, budget_config, float_list, int_list, name_list, set_threads
from mambaspike.lab.ablate import DEFAULT_NEURONS, DEFAULT_TAUS

HELP = "ablations: with/without the spiking front-end; neuron model x tau"


def add_parser(sub) -> argparse.ArgumentParser:
    a = sub.add_parser(
        "ablate",
        help=HELP,
        description="(a) mambaspike vs mamba (paper Table 2) and (b) each --neurons model at each --taus membrane "
        "time constant (paper Fig. 5), trained with one budget into OUTPUT_DIR/runs/ (finished runs are reused). "
        "Writes ablation.md, ablation_frontend.csv, ablation_neuron.csv, ablation.png.",
    )
    add_budget(a)
    a.add_argument(
        "--neurons",
        type=name_list,
        default=list(DEFAULT_NEURONS),
        metavar="N,...",
        help=f"neuron models (names in mambaspike.neurons.NEURONS; default: {','.join(DEFAULT_NEURONS)})",
    )
    a.add_argument(
        "--taus",
        type=float_list,
        default=list(DEFAULT_TAUS),
        metavar="MS,...",
        help="membrane time constants in ms",
    )
    a.add_argument("--learn-tau", action="store_true", help="let tau train from its initial value (default: fixed)")
    a.add_argument("--only", choices=["frontend", "neuron"], default=None, help="run one of the two ablations")
    a.add_argument(
        "--neuron-seeds",
        type=int_list,
        default=None,
        metavar="S,...",
        help="seeds of the neuron x tau grid (default: --seeds); fewer keep the grid affordable",
    )
    return a


def run(args: argparse.Namespace) -> int:
    from mambaspike.lab.ablate import ablate

    set_threads(args)
    parts = (args.only,) if args.only else ("frontend", "neuron")
    ablate(
        args.output_dir,
        budget_config(args),
        seeds=args.seeds,
        neurons=args.neurons,
        taus=args.taus,
        learn_tau=args.learn_tau,
        parts=parts,
        latency_repeats=args.latency_repeats,
        neuron_seeds=args.neuron_seeds,
    )
    print((Path(args.output_dir) / "ablation.md").read_text())
    return 0
