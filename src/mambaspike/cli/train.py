"""``mambaspike train``: train a model and write its run directory."""

from __future__ import annotations

import argparse
import sys

from mambaspike.cli.options import (
    add_augment_set,
    add_dataset,
    add_model_settings,
    add_select,
    add_threads,
    augment_settings,
    model_settings,
    nonneg_float,
    positive_float,
    positive_int,
    track_explicit,
)
from mambaspike.errors import ConfigError

HELP = "train a model (defaults: Mamba-Spike on the embedded N-Digits data set)"


def add_parser(sub) -> argparse.ArgumentParser:
    from mambaspike.models.registry import DESCRIPTIONS, model_names
    from mambaspike.training.config import TrainConfig

    d = TrainConfig()
    models_help = "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items())
    t = sub.add_parser(
        "train",
        help=HELP,
        description="Train a model and write checkpoints, log.csv and metrics.json to --output-dir. "
        "The checkpoint is selected on the validation split; test metrics are of that checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    track_explicit(t)  # so a recipe (--config) yields to explicit options
    t.add_argument(
        "--config",
        default=None,
        metavar="RECIPE",
        help="a recipe (YAML; a path or a name in configs/, e.g. dvsgesture-mambaspike); "
        "options given explicitly override it",
    )
    add_model_settings(t, overrides="the recipe's model_overrides")
    t.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="augment the train split (the data set's spatial shift / flip / event drop and jitter); "
        "default: on where the data set defines an augmentation (N-Digits, N-MNIST, DVS Gesture, CIFAR10-DVS, "
        "DVS-Motion), off elsewhere",
    )
    t.add_argument(
        "--augment-events",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also train on the robustness study's event perturbations: half of the samples get, at levels "
        "drawn per sample, up to half of their events dropped, spatial jitter up to sigma = 1 px and "
        "background events up to 1:1 (event data sets)",
    )
    add_augment_set(t)
    add_select(t)
    t.add_argument(
        "--download",
        action="store_true",
        help="let tonic fetch a missing data set (nmnist, dvsgesture, cifar10dvs, shd, ntidigits)",
    )
    add_dataset(t, d.dataset)
    t.add_argument("--model", default=d.model, choices=model_names(), help=f"model family ({models_help})")
    t.add_argument("--epochs", type=positive_int, default=d.epochs, help="training epochs")
    t.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="batch size")
    t.add_argument("--lr", type=positive_float, default=d.lr, help="peak learning rate (AdamW, cosine with warm-up)")
    t.add_argument(
        "--weight-decay",
        type=nonneg_float,
        default=d.weight_decay,
        help="AdamW weight decay (never on A_log, D, norms, biases, neuron parameters)",
    )
    t.add_argument("--warmup-epochs", type=nonneg_float, default=d.warmup_epochs, help="linear warm-up length")
    t.add_argument("--grad-clip", type=nonneg_float, default=d.grad_clip, help="max gradient norm (0: off)")
    t.add_argument(
        "--time-window",
        type=positive_int,
        default=None,
        metavar="US",
        help="length of each sample in microseconds (default: the data set's, 300000 for N-Digits)",
    )
    t.add_argument(
        "--dt",
        type=positive_int,
        default=None,
        metavar="US",
        help="time bin in microseconds (default: the data set's, 10000 for N-Digits)",
    )
    t.add_argument(
        "--data-dir",
        default=None,
        help="where data sets live; N-Digits is generated here on first use "
        "(default: $MAMBASPIKE_DATA or ~/.cache/mambaspike)",
    )
    t.add_argument("--output-dir", default=None, help="run directory (default: outputs/<dataset>-<model>-seed<seed>)")
    t.add_argument("--seed", type=int, default=d.seed, help="random seed (model init, data order, splits)")
    t.add_argument(
        "--subset", type=positive_int, default=None, metavar="N", help="use at most N samples per split (smoke runs)"
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --output-dir (its saved configuration and schedule are used)",
    )
    t.add_argument(
        "--extend-epochs",
        action="store_true",
        help="with --resume and a larger --epochs: train on to the new epoch count, the cosine learning-rate "
        "schedule stretched to the new total from the resumed step on (without it, another --epochs is refused)",
    )
    t.add_argument("--overwrite", action="store_true", help="replace a finished run in --output-dir")
    t.add_argument(
        "--save-every",
        type=positive_int,
        default=d.save_every,
        metavar="STEPS",
        help="steps between mid-epoch checkpoints",
    )
    add_threads(t, help="CPU threads for torch (default: torch's)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument(
        "--device",
        default=d.device,
        metavar="DEVICE",
        help="auto (CUDA when available), cpu, cuda or cuda:N; under torchrun each rank takes its local GPU",
    )
    t.add_argument(
        "--amp",
        action="store_true",
        help="bf16 mixed precision (autocast) on a CUDA GPU; refused on CPU. Untested on GPU",
    )
    return t


def run(args: argparse.Namespace) -> int:
    from mambaspike.training.config import TrainConfig  # validation first: the trainer's imports wait

    settings = model_settings(args)
    if settings and args.resume:
        raise ConfigError(
            "--set: a resumed run keeps the model settings it was started with; train a new run "
            "(another --output-dir, or --overwrite) to change them"
        )
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
        augment_events=args.augment_events,
        augment_set=augment_settings(args),
        select=args.select,
        download=args.download,
        amp=args.amp,
        device=args.device,
    )
    recipe_overrides = {}
    if args.config:
        from mambaspike.training.recipes import load_recipe

        recipe = load_recipe(args.config)
        recipe_overrides = recipe.pop("model_overrides")
        explicit = getattr(args, "explicit", set())
        renamed = {"time_window": "time_window_us", "dt": "dt_us"}
        explicit = {renamed.get(k, k) for k in explicit} | ({"augment_set"} if args.augment_set else set())
        options = {**options, **{k: v for k, v in recipe.items() if k not in explicit}}
    options["model_overrides"] = {**recipe_overrides, **settings}
    cfg = TrainConfig(**options, progress=not args.no_progress and sys.stderr.isatty()).validate()
    if args.extend_epochs and not args.resume:
        raise ConfigError("--extend-epochs: applies to a resumed run only; add --resume")
    if args.resume and "epochs" not in getattr(args, "explicit", set()):
        cfg.epochs = None  # the run's own epoch count
    from mambaspike.training.trainer import train

    try:
        train(cfg, resume=args.resume, overwrite=args.overwrite, extend_epochs=args.extend_epochs)
    except KeyboardInterrupt:
        return 130
    return 0
