"""The ``mambaspike`` command line: one ``_add_<cmd>`` / ``_cmd_<cmd>`` pair per subcommand in ``COMMANDS``.

Errors caused by options, data or files are printed on one line (``mambaspike <cmd>: error: ...``)
with a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .errors import MambaspikeError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    return v


def _nonneg_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}")
    return v


def _add_train(sub) -> None:
    from .data import dataset_names
    from .models import DESCRIPTIONS, model_names
    from .train import TrainConfig

    d = TrainConfig()
    models_help = "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items())
    t = sub.add_parser(
        "train",
        help="train a model (defaults: Mamba-Spike on the embedded N-Digits data set)",
        description="Train a model and write checkpoints, log.csv and metrics.json to --output-dir. "
        "The checkpoint is selected on the validation split; test metrics are of that checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--dataset", default=d.dataset, choices=dataset_names(), help="data set")
    t.add_argument("--model", default=d.model, choices=model_names(), help=f"model family ({models_help})")
    t.add_argument("--epochs", type=_positive_int, default=d.epochs, help="training epochs")
    t.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help="batch size")
    t.add_argument("--lr", type=_positive_float, default=d.lr, help="peak learning rate (AdamW, cosine with warm-up)")
    t.add_argument("--weight-decay", type=_nonneg_float, default=d.weight_decay,
                   help="AdamW weight decay (never on A_log, D, norms, biases, neuron parameters)")  # fmt: skip
    t.add_argument("--warmup-epochs", type=_nonneg_float, default=d.warmup_epochs, help="linear warm-up length")
    t.add_argument("--grad-clip", type=_nonneg_float, default=d.grad_clip, help="max gradient norm (0: off)")
    t.add_argument("--time-window", type=_positive_int, default=None, metavar="US",
                   help="length of each sample in microseconds (default: the data set's, 300000 for N-Digits)")  # fmt: skip
    t.add_argument("--dt", type=_positive_int, default=None, metavar="US",
                   help="time bin in microseconds (default: the data set's, 10000 for N-Digits)")  # fmt: skip
    t.add_argument("--data-dir", default=None,
                   help="where data sets live; N-Digits is generated here on first use "
                        "(default: $MAMBASPIKE_DATA or ~/.cache/mambaspike)")  # fmt: skip
    t.add_argument("--output-dir", default=None, help="run directory (default: outputs/<dataset>-<model>-seed<seed>)")
    t.add_argument("--seed", type=int, default=d.seed, help="random seed (model init, data order, splits)")
    t.add_argument("--subset", type=_positive_int, default=None, metavar="N",
                   help="use at most N samples per split (smoke runs)")  # fmt: skip
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --output-dir (its saved configuration is used; "
                        "--epochs may be raised)")  # fmt: skip
    t.add_argument("--overwrite", action="store_true", help="replace a finished run in --output-dir")
    t.add_argument("--save-every", type=_positive_int, default=d.save_every, metavar="STEPS",
                   help="steps between mid-epoch checkpoints")  # fmt: skip
    t.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch (default: torch's)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--amp", action="store_true",
                   help="bf16 mixed precision (autocast) on a CUDA GPU; refused on CPU. Untested on GPU")  # fmt: skip


def _add_eval(sub) -> None:
    e = sub.add_parser(
        "eval",
        help="recompute the metrics of a saved run",
        description="Rebuild a run's model from its saved files, load the validation-selected checkpoint "
        "and recompute metrics.json (test accuracy and macro-F1, spikes per sample, batch-1 latency).",
    )
    e.add_argument("--checkpoint", required=True, metavar="DIR", help="run directory written by 'mambaspike train'")
    e.add_argument("--data-dir", default=None, help="data directory (default: the one the run used)")
    e.add_argument("--batch-size", type=_positive_int, default=64)
    e.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    e.add_argument("--output", default=None, metavar="FILE", help="also write the metrics to this JSON file")


def _cmd_train(args) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(
        dataset=args.dataset,
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs,
        grad_clip=args.grad_clip,
        time_window_us=args.time_window,
        dt_us=args.dt,
        data_dir=args.data_dir,
        output_dir=args.output_dir,
        seed=args.seed,
        subset=args.subset,
        save_every=args.save_every,
        threads=args.threads,
        progress=not args.no_progress and sys.stderr.isatty(),
        amp=args.amp,
    )
    try:
        train(cfg, resume=args.resume, overwrite=args.overwrite)
    except KeyboardInterrupt:
        return 130
    return 0


def _cmd_eval(args) -> int:
    import torch

    from .checkpoint import atomic_write_json
    from .evaluate import evaluate_run

    if args.threads:
        torch.set_num_threads(args.threads)
    metrics = evaluate_run(args.checkpoint, data_dir=args.data_dir, batch_size=args.batch_size)
    print(json.dumps(metrics, indent=2))
    if args.output:
        atomic_write_json(args.output, metrics)
    return 0


def _add_bench(sub) -> None:
    from .bench import BENCHES, load

    b = sub.add_parser(
        "bench",
        help="measure speed and memory (see 'mambaspike bench KIND --help')",
        description="Performance measurements; every ratio is measured within one run. "
        "Threads and device are stated in every row.",
    )
    kinds = b.add_subparsers(dest="kind", metavar="KIND", parser_class=_Parser)
    kinds.required = True
    for kind in BENCHES:
        module = load(kind)
        k = kinds.add_parser(kind, help=module.DESCRIPTION, description=module.DESCRIPTION,
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
        k.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
        k.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
        module.add_arguments(k)


def _cmd_bench(args) -> int:
    import torch

    from .bench import environment, format_table, load

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for row in load(args.kind).run(args):
        row = {**row, **environment(row.pop("device", "cpu"))}
        if args.json:
            print(json.dumps(row), flush=True)
        rows.append(row)
    if not args.json:
        print(format_table(rows))
    return 0


def _add_sweep(sub) -> None:
    from .data import dataset_names
    from .sweep import GRIDS

    w = sub.add_parser(
        "sweep",
        help="run the Spiking Mamba paper's hyper-parameter ablation grid (Table 1) and tabulate it",
        description="Train the spiking-mamba model once per row of the paper's MNIST ablation grid "
        "(channels, time steps, patchifier blocks, block composition, state size) on --dataset and "
        "write sweep.csv and sweep.md (parameters, training time, test accuracy) to --output-dir.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    w.add_argument("--dataset", default="digits", choices=dataset_names(), help="data set")
    w.add_argument("--grid", default="paper", choices=sorted(GRIDS), help="'paper': Table 1; 'tiny': a smoke test")
    w.add_argument("--epochs", type=_positive_int, default=2, help="epochs per run (paper: 2)")
    w.add_argument("--batch-size", type=_positive_int, default=256, help="batch size (paper: 256)")
    w.add_argument("--lr", type=_positive_float, default=2e-3, help="peak learning rate")
    w.add_argument("--embed-dim", type=_positive_int, default=64, help="embedding size (paper: 64)")
    w.add_argument("--subset", type=_positive_int, default=None, metavar="N", help="at most N samples per split")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--data-dir", default=None, help="where data sets live")
    w.add_argument("--output-dir", default="outputs/sweep", help="where the tables and the runs go")
    w.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")


def _cmd_sweep(args) -> int:
    from .sweep import run_sweep

    try:
        run_sweep(
            args.dataset, args.output_dir, grid=args.grid, epochs=args.epochs, batch_size=args.batch_size,
            lr=args.lr, embed_dim=args.embed_dim, seed=args.seed, subset=args.subset, data_dir=args.data_dir,
            threads=args.threads,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"stopped; the rows finished so far are in {args.output_dir}/sweep.csv", file=sys.stderr)
        return 130
    print(f"wrote {args.output_dir}/sweep.csv and {args.output_dir}/sweep.md")
    return 0


# Every subcommand: name -> (adds its parser to the subparsers, runs it and returns the exit status).
COMMANDS = {
    "train": (_add_train, _cmd_train),
    "eval": (_add_eval, _cmd_eval),
    "bench": (_add_bench, _cmd_bench),
    "sweep": (_add_sweep, _cmd_sweep),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mambaspike",
        description="Spiking front-end + Mamba backbone for event-based and temporal data.",
    )
    parser.add_argument("--version", action="version", version=f"mambaspike {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data.errors import DatasetError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except (MambaspikeError, DatasetError) as e:
        print(f"mambaspike {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
