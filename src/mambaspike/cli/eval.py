"""``mambaspike eval``: evaluate a saved run and write its report."""

from __future__ import annotations

import argparse
import json
import sys

from mambaspike.cli.options import add_threads, positive_int, set_threads

HELP = "evaluate a saved run: accuracy, F1, latency, spikes, firing rates, energy"


def add_parser(sub) -> argparse.ArgumentParser:
    e = sub.add_parser(
        "eval",
        help=HELP,
        description="Rebuild a run's model from its saved files, load the validation-selected checkpoint and "
        "evaluate it on the test split: accuracy, macro-F1, per-class report and confusion matrix, batch-1 "
        "latency (and per time bin where the model streams), spikes per sample and firing rate per layer, "
        "a compute-only energy estimate per layer (MACs vs ACs), NeuroBench-style metrics. Writes eval.json, "
        "eval.md and confusion_matrix.png into the run directory (or --output-dir); metrics.json is untouched.",
    )
    e.add_argument("--checkpoint", required=True, metavar="DIR", help="run directory written by 'mambaspike train'")
    e.add_argument("--data-dir", default=None, help="data directory (default: the one the run used)")
    e.add_argument("--batch-size", type=positive_int, default=64)
    add_threads(e)
    e.add_argument("--output", default=None, metavar="FILE", help="also write the metrics to this JSON file")
    e.add_argument(
        "--output-dir", default=None, metavar="DIR", help="write the report here (default: the run directory)"
    )
    e.add_argument(
        "--compare-paper",
        action="store_true",
        help="print our numbers beside the paper's Table 1/2 figures for the (nearest) data set",
    )
    e.add_argument(
        "--analyze-temporal",
        action="store_true",
        help="plot firing rate over time per spiking layer (firing_rate_over_time.png)",
    )
    e.add_argument(
        "--analyze-training",
        action="store_true",
        help="also tabulate and plot the run's training per epoch: train/validation accuracy and gap, gradient "
        "norm per stage, and per spiking layer the firing rate and dead / saturated neuron fractions "
        "(training_analysis.md, training_analysis.png)",
    )
    e.add_argument("--latency-repeats", type=positive_int, default=30, help="timed batch-1 forward passes")
    return e


def run(args: argparse.Namespace) -> int:
    from mambaspike.evaluation.report import evaluate_checkpoint, paper_comparison_text
    from mambaspike.training.checkpoint import atomic_write_json

    set_threads(args)
    metrics = evaluate_checkpoint(
        args.checkpoint,
        out_dir=args.output_dir,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        compare_paper=args.compare_paper,
        analyze_temporal=args.analyze_temporal,
        latency_repeats=args.latency_repeats,
    )
    short = {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}
    short["energy_note"] = metrics["energy"]["note"]
    print(json.dumps(short, indent=2))
    if args.compare_paper:
        print(paper_comparison_text(metrics["paper_comparison"]))
    print(f"report: {metrics['files']['markdown']}", file=sys.stderr)
    if args.analyze_training:
        from pathlib import Path

        from mambaspike.evaluation.diagnostics import analysis_markdown, training_analysis
        from mambaspike.evaluation.plots import training_analysis_png

        analysis = training_analysis(args.checkpoint)
        out = Path(args.output_dir or args.checkpoint)
        out.mkdir(parents=True, exist_ok=True)
        text = analysis_markdown(analysis)
        (out / "training_analysis.md").write_text(text)
        training_analysis_png(analysis, out / "training_analysis.png")
        print(text)
        metrics["training_analysis"] = analysis
    if args.output:
        atomic_write_json(args.output, metrics)
    return 0
