"""The ``mambaspike`` command line: one ``_add_<cmd>`` / ``_cmd_<cmd>`` pair per subcommand in ``COMMANDS``.

Errors caused by options, data or files are printed on one line (``mambaspike <cmd>: error: ...``)
with a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mambaspike._version import __version__
from mambaspike.errors import MambaspikeError


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


class _StoreExplicit(argparse._StoreAction):
    """``store`` that also records the option as given on the command line (``args.explicit``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        namespace.__dict__.setdefault("explicit", set()).add(self.dest)


class _StoreTrueExplicit(argparse._StoreTrueAction):
    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        namespace.__dict__.setdefault("explicit", set()).add(self.dest)


def _add_train(sub) -> None:
    from mambaspike.data import dataset_names
    from mambaspike.models.registry import DESCRIPTIONS, model_names
    from mambaspike.training.trainer import TrainConfig

    d = TrainConfig()
    models_help = "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items())
    t = sub.add_parser(
        "train",
        help="train a model (defaults: Mamba-Spike on the embedded N-Digits data set)",
        description="Train a model and write checkpoints, log.csv and metrics.json to --output-dir. "
        "The checkpoint is selected on the validation split; test metrics are of that checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.register("action", None, _StoreExplicit)  # so a recipe (--config) yields to explicit options
    t.register("action", "store", _StoreExplicit)
    t.register("action", "store_true", _StoreTrueExplicit)
    t.add_argument("--config", default=None, metavar="RECIPE",
                   help="a recipe (YAML; a path or a name in configs/, e.g. dvsgesture-mambaspike); "
                        "options given explicitly override it")  # fmt: skip
    t.add_argument("--augment", action="store_true",
                   help="augment the train split (the data set's spatial shift / flip / event drop)")  # fmt: skip
    t.add_argument("--download", action="store_true",
                   help="let tonic fetch a missing data set (nmnist, dvsgesture, cifar10dvs, shd, ntidigits)")  # fmt: skip
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
    t.add_argument("--device", default=d.device, metavar="DEVICE",
                   help="auto (CUDA when available), cpu, cuda or cuda:N; under torchrun each rank takes its "
                        "local GPU")  # fmt: skip
    t.add_argument("--amp", action="store_true",
                   help="bf16 mixed precision (autocast) on a CUDA GPU; refused on CPU. Untested on GPU")  # fmt: skip


def _add_eval(sub) -> None:
    e = sub.add_parser(
        "eval",
        help="evaluate a saved run: accuracy, F1, latency, spikes, firing rates, energy",
        description="Rebuild a run's model from its saved files, load the validation-selected checkpoint and "
        "evaluate it on the test split: accuracy, macro-F1, per-class report and confusion matrix, batch-1 "
        "latency (and per time bin where the model streams), spikes per sample and firing rate per layer, "
        "a compute-only energy estimate per layer (MACs vs ACs), NeuroBench-style metrics. Writes eval.json, "
        "eval.md and confusion_matrix.png into the run directory (or --output-dir); metrics.json is untouched.",
    )
    e.add_argument("--checkpoint", required=True, metavar="DIR", help="run directory written by 'mambaspike train'")
    e.add_argument("--data-dir", default=None, help="data directory (default: the one the run used)")
    e.add_argument("--batch-size", type=_positive_int, default=64)
    e.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    e.add_argument("--output", default=None, metavar="FILE", help="also write the metrics to this JSON file")
    e.add_argument("--output-dir", default=None, metavar="DIR",
                   help="write the report here (default: the run directory)")  # fmt: skip
    e.add_argument("--compare-paper", action="store_true",
                   help="print our numbers beside the paper's Table 1/2 figures for the (nearest) data set")
    e.add_argument("--analyze-temporal", action="store_true",
                   help="plot firing rate over time per spiking layer (firing_rate_over_time.png)")  # fmt: skip
    e.add_argument("--latency-repeats", type=_positive_int, default=30, help="timed batch-1 forward passes")


def _cmd_train(args) -> int:
    from mambaspike.training.trainer import TrainConfig, train

    options = dict(
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
        augment=args.augment,
        download=args.download,
        amp=args.amp,
        device=args.device,
    )
    if args.config:
        from mambaspike.training.recipes import load_recipe

        recipe = load_recipe(args.config)
        explicit = getattr(args, "explicit", set())
        renamed = {"time_window": "time_window_us", "dt": "dt_us"}
        explicit = {renamed.get(k, k) for k in explicit}
        options = {**options, **{k: v for k, v in recipe.items() if k not in explicit}}
    cfg = TrainConfig(**options, progress=not args.no_progress and sys.stderr.isatty())
    try:
        train(cfg, resume=args.resume, overwrite=args.overwrite)
    except KeyboardInterrupt:
        return 130
    return 0


def _cmd_eval(args) -> int:
    import torch

    from mambaspike.training.checkpoint import atomic_write_json
    from mambaspike.evaluation.report import evaluate_checkpoint, paper_comparison_text

    if args.threads:
        torch.set_num_threads(args.threads)
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
    if args.output:
        atomic_write_json(args.output, metrics)
    return 0


def _add_bench(sub) -> None:
    from mambaspike.bench import BENCHES, load

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

    from mambaspike.bench import environment, format_table, load

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


def _float_list(s: str) -> list[float]:
    try:
        return [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def _int_list(s: str) -> list[int]:
    try:
        return [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def _name_list(s: str) -> list[str]:
    return [v.strip() for v in s.split(",") if v.strip()]


def _json_dict(s: str) -> dict:
    try:
        d = json.loads(s)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {s!r} ({e.msg})") from None
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {s!r}")
    return d


def _add_budget(p) -> None:
    """Options shared by compare and ablate: data set and training budget."""
    from mambaspike.data import dataset_names
    from mambaspike.training.trainer import TrainConfig

    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset, choices=dataset_names(), help="data set")
    p.add_argument("--epochs", type=_positive_int, default=d.epochs, help="training epochs per run")
    p.add_argument("--subset", type=_positive_int, default=None, metavar="N", help="at most N samples per split")
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    p.add_argument("--lr", type=_positive_float, default=d.lr, help="peak learning rate")
    p.add_argument("--seeds", type=_int_list, default=[0], metavar="S,S,...", help="seeds, comma-separated")
    p.add_argument("--data-dir", default=None, help="where data sets live")
    p.add_argument("--model-config", type=_json_dict, default={}, metavar="JSON",
                   help='ModelConfig overrides for every run, e.g. \'{"d_model": 64, "n_layers": 1}\'')  # fmt: skip
    p.add_argument("--output-dir", required=True, metavar="DIR", help="tables, plots and runs/ go here")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--latency-repeats", type=_positive_int, default=10, help="timed batch-1 passes per run")


def _budget_config(args):
    from mambaspike.training.trainer import TrainConfig

    return TrainConfig(dataset=args.dataset, epochs=args.epochs, subset=args.subset, batch_size=args.batch_size,
                       lr=args.lr, data_dir=args.data_dir, threads=args.threads, progress=False,
                       model_overrides=dict(args.model_config))  # fmt: skip


def _add_robustness(sub) -> None:
    from mambaspike.evaluation.robustness import DEFAULT_LEVELS, LEVEL_UNITS, PERTURBATIONS

    r = sub.add_parser(
        "robustness",
        help="accuracy against perturbation level (event drop, noise, jitter) for one or more checkpoints",
        description="Evaluate each run's validation-selected checkpoint on its test split under each perturbation "
        "and level; perturbations act on the binned frames (see mambaspike.robustness). Writes robustness.csv, "
        "robustness.md and robustness.png (one curve per checkpoint). Levels: "
        + "; ".join(f"{k}: {LEVEL_UNITS[k]}, default {','.join(f'{v:g}' for v in DEFAULT_LEVELS[k])}"
                    for k in PERTURBATIONS),
    )
    r.add_argument("--checkpoint", required=True, nargs="+", metavar="DIR", help="run directories")
    r.add_argument("--output-dir", required=True, metavar="DIR", help="where the table and plot go")
    r.add_argument("--perturbations", type=_name_list, default=None, metavar="NAME,...",
                   help=f"subset of {', '.join(PERTURBATIONS)} "
                        "(default: the event ones for event input, else gaussian)")  # fmt: skip
    for k in PERTURBATIONS:
        r.add_argument(f"--{k.replace('_', '-')}-levels", dest=f"levels_{k}", type=_float_list, default=None,
                       metavar="L,L,...", help=f"levels of {k} ({LEVEL_UNITS[k]})")  # fmt: skip
    r.add_argument("--seed", type=int, default=0, help="seed of the perturbations")
    r.add_argument("--subset", type=_positive_int, default=None, metavar="N", help="first N test samples only")
    r.add_argument("--batch-size", type=_positive_int, default=64)
    r.add_argument("--data-dir", default=None, help="data directory (default: the one each run used)")
    r.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")


def _cmd_robustness(args) -> int:
    import torch

    from mambaspike.evaluation.robustness import PERTURBATIONS, robustness

    if args.threads:
        torch.set_num_threads(args.threads)
    levels = {k: getattr(args, f"levels_{k}") for k in PERTURBATIONS if getattr(args, f"levels_{k}") is not None}
    robustness(args.checkpoint, args.output_dir, perturbations=args.perturbations, levels=levels, seed=args.seed,
               batch_size=args.batch_size, data_dir=args.data_dir, subset=args.subset)  # fmt: skip
    print((Path(args.output_dir) / "robustness.md").read_text())
    return 0


def _add_compare(sub) -> None:
    from mambaspike.models.registry import model_names

    c = sub.add_parser(
        "compare",
        help="train (or reuse) Mamba-Spike and baselines over seeds and write the paper-style table",
        description="Train every --models x --seeds run with one budget into OUTPUT_DIR/runs/ (finished runs are "
        "reused), or take --runs as they are, and write compare.md/.csv/.png: accuracy, macro-F1, batch-1 latency, "
        "spikes per sample, energy estimate, mean ± std over seeds.",
    )
    _add_budget(c)
    c.add_argument("--models", type=_name_list, default=["mambaspike", "mamba", "lstm", "gru"], metavar="M,...",
                   help=f"model families (of {', '.join(model_names())})")  # fmt: skip
    c.add_argument("--runs", nargs="+", default=None, metavar="DIR", help="tabulate these run directories, no training")


def _cmd_compare(args) -> int:
    import torch

    from mambaspike.lab.compare import compare
    from mambaspike.errors import ConfigError
    from mambaspike.models.registry import model_names

    if args.threads:
        torch.set_num_threads(args.threads)
    bad = [m for m in args.models if m not in model_names()]
    if bad:
        raise ConfigError(f"--models: unknown model(s) {', '.join(bad)}; available: {', '.join(model_names())}")
    compare(args.output_dir, _budget_config(args), models=args.models, seeds=args.seeds, run_dirs=args.runs,
            latency_repeats=args.latency_repeats)  # fmt: skip
    print((Path(args.output_dir) / "compare.md").read_text())
    return 0


def _add_ablate(sub) -> None:
    a = sub.add_parser(
        "ablate",
        help="ablations: with/without the spiking front-end; neuron model x tau",
        description="(a) mambaspike vs mamba (paper Table 2) and (b) each --neurons model at each --taus membrane "
        "time constant (paper Fig. 5), trained with one budget into OUTPUT_DIR/runs/ (finished runs are reused). "
        "Writes ablation.md, ablation_frontend.csv, ablation_neuron.csv, ablation.png.",
    )
    _add_budget(a)
    a.add_argument("--neurons", type=_name_list, default=["lif", "srm"], metavar="N,...",
                   help="neuron models (names in mambaspike.neurons.NEURONS)")  # fmt: skip
    a.add_argument("--taus", type=_float_list, default=[10.0, 20.0, 30.0, 40.0, 50.0], metavar="MS,...",
                   help="membrane time constants in ms")  # fmt: skip
    a.add_argument("--learn-tau", action="store_true", help="let tau train from its initial value (default: fixed)")
    a.add_argument("--only", choices=["frontend", "neuron"], default=None, help="run one of the two ablations")
    a.add_argument("--neuron-seeds", type=_int_list, default=None, metavar="S,...",
                   help="seeds of the neuron x tau grid (default: --seeds); fewer keep the grid affordable")  # fmt: skip


def _cmd_ablate(args) -> int:
    import torch

    from mambaspike.lab.ablate import ablate

    if args.threads:
        torch.set_num_threads(args.threads)
    parts = (args.only,) if args.only else ("frontend", "neuron")
    ablate(args.output_dir, _budget_config(args), seeds=args.seeds, neurons=args.neurons, taus=args.taus,
           learn_tau=args.learn_tau, parts=parts, latency_repeats=args.latency_repeats,
           neuron_seeds=args.neuron_seeds)  # fmt: skip
    print((Path(args.output_dir) / "ablation.md").read_text())
    return 0


def _block_range(s: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in s.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP block indices (e.g. 1:3), got {s!r}") from None
    return a, b


def _add_export(sub) -> None:
    from mambaspike.export.core import FORMATS

    e = sub.add_parser(
        "export",
        help="export a trained model to ONNX, or its spiking front-end to NIR",
        description="onnx: the inference path of the validation-selected checkpoint (input frames "
        "[T, batch, C, H, W] with the run's T, dynamic batch), checked with onnxruntime against PyTorch. "
        "nir: the spiking front-end (BatchNorm folded, LIF as NIR's continuous-time LIF); the Mamba backbone "
        "has no NIR form and what is not exported is stated. Needs: pip install 'mambaspike[export]'.",
    )
    e.add_argument("--checkpoint", required=True, metavar="DIR", help="run directory written by 'mambaspike train'")
    e.add_argument("--format", required=True, choices=FORMATS, help="export format")
    e.add_argument("--output", default=None, metavar="FILE", help="output file (default: DIR/model.onnx or DIR/model.nir)")
    e.add_argument("--atol", type=_positive_float, default=1e-4,
                   help="onnx: largest allowed |onnxruntime - PyTorch| of the logits")  # fmt: skip
    e.add_argument("--blocks", type=_block_range, default=None, metavar="START:STOP",
                   help="nir: front-end blocks to export (default: those before the temporal pooling)")  # fmt: skip
    e.add_argument("--bin-seconds", type=_positive_float, default=None, metavar="S",
                   help="nir: seconds one input bin stands for in the graph's time constants (default: the run's "
                        "bin; snnTorch's importer simulates at 1e-4 s, so use 1e-4 to import there)")  # fmt: skip


def _cmd_export(args) -> int:
    from mambaspike.export.core import export_run

    export_run(args.checkpoint, args.format, args.output, atol=args.atol, blocks=args.blocks, input_dt_s=args.bin_seconds)
    return 0


def _add_datasets(sub) -> None:
    d = sub.add_parser(
        "datasets",
        help="list every data set, its expected layout, and whether it is present under --data-dir",
        description="List the registered data sets with the folder layout each expects under --data-dir, "
        "where to obtain it, and (if present) how many train/test samples it holds.",
    )
    d.add_argument("--data-dir", default=None, help="where data sets live (default: $MAMBASPIKE_DATA or ~/.cache/mambaspike)")
    d.add_argument("--json", action="store_true", help="one JSON object per data set instead of text")


def _cmd_datasets(args) -> int:
    from mambaspike.data import DEFAULT_DATA_DIR, dataset_status

    data_dir = DEFAULT_DATA_DIR if args.data_dir is None else args.data_dir
    for row in dataset_status(data_dir):
        if args.json:
            print(json.dumps(row))
            continue
        print(f"{row['name']:<12} {row['status']}\n  {row['summary']}\n  layout: {row['layout']}\n  source: {row['source']}")
    return 0


def _add_sweep(sub) -> None:
    from mambaspike.data import dataset_names
    from mambaspike.lab.sweep import GRIDS

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
    from mambaspike.lab.sweep import run_sweep

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
    "robustness": (_add_robustness, _cmd_robustness),
    "compare": (_add_compare, _cmd_compare),
    "ablate": (_add_ablate, _cmd_ablate),
    "export": (_add_export, _cmd_export),
    "datasets": (_add_datasets, _cmd_datasets),
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
    from mambaspike.data.errors import DatasetError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except (MambaspikeError, DatasetError) as e:
        print(f"mambaspike {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
