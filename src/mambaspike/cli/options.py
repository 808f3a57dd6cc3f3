"""What the commands share: the one-line-error parser, option value types, and the option groups more than
one command takes (data set, threads, model settings, the compare/ablate budget).

Only light modules are imported at the top; a group that needs a registry (data sets, model defaults)
imports it when it is added, and run-time helpers import torch when they run.
"""

from __future__ import annotations

import argparse
import json

from mambaspike.errors import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------------------------
# Option value types (a bad value is argparse's one-line error, exit status 2)
# --------------------------------------------------------------------------------------------


def positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    return v


def nonneg_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {s!r}")
    return v


def float_list(s: str) -> list[float]:
    try:
        return [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def int_list(s: str) -> list[int]:
    try:
        return [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def name_list(s: str) -> list[str]:
    return [v.strip() for v in s.split(",") if v.strip()]


def json_dict(s: str) -> dict:
    try:
        d = json.loads(s)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {s!r} ({e.msg})") from None
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {s!r}")
    return d


def key_value(s: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)``; the value stays text (parsed as YAML by :func:`model_settings`)."""
    key, sep, value = s.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. d_model=64), got {s!r}")
    return key.strip(), value


# --------------------------------------------------------------------------------------------
# Options given explicitly (so a recipe yields to them)
# --------------------------------------------------------------------------------------------


class _StoreExplicit(argparse._StoreAction):
    """``store`` that also records the option as given on the command line (``args.explicit``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        namespace.__dict__.setdefault("explicit", set()).add(self.dest)


class _StoreTrueExplicit(argparse._StoreTrueAction):
    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        namespace.__dict__.setdefault("explicit", set()).add(self.dest)


def track_explicit(parser: argparse.ArgumentParser) -> None:
    """Options added to ``parser`` from now on record in ``args.explicit`` that they were given."""
    parser.register("action", None, _StoreExplicit)
    parser.register("action", "store", _StoreExplicit)
    parser.register("action", "store_true", _StoreTrueExplicit)


# --------------------------------------------------------------------------------------------
# Option groups
# --------------------------------------------------------------------------------------------


def add_dataset(p: argparse.ArgumentParser, default: str) -> None:
    from mambaspike.data import dataset_names

    p.add_argument("--dataset", default=default, choices=dataset_names(), help="data set")


def add_threads(p: argparse.ArgumentParser, help: str = "CPU threads for torch") -> None:
    p.add_argument("--threads", type=positive_int, default=None, help=help)


def set_threads(args: argparse.Namespace) -> None:
    """``torch.set_num_threads(--threads)`` when it was given."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def add_model_settings(p: argparse.ArgumentParser, overrides: str) -> None:
    """``--set KEY=VALUE`` (repeatable): one model setting each; ``overrides`` names what they take
    precedence over."""
    p.add_argument(
        "--set",
        dest="settings",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model setting (a ModelConfig field, as a recipe's model_overrides takes it: neuron, "
        "tau_ms, channels, d_model, n_layers, ...), the value in YAML, e.g. --set neuron=srm --set "
        f"channels=[16,32]; repeatable; overrides {overrides}",
    )


def add_select(p: argparse.ArgumentParser) -> None:
    """``--select``: the checkpoint-selection rule (``TrainConfig.select``)."""
    from mambaspike.training.config import SELECT_RULES

    p.add_argument(
        "--select",
        choices=SELECT_RULES,
        default=SELECT_RULES[0],
        help="which epoch's checkpoint is the result: accuracy-then-loss (highest validation accuracy, ties to the "
        "lower validation loss; default) or accuracy (the first epoch at the highest validation accuracy, the "
        "rule of runs recorded before this option)",
    )


def _yaml_value(text: str, where: str):
    """``text`` parsed as YAML; a one-line ``ConfigError`` naming ``where`` (the option and its pair) if
    it is not YAML."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: not a YAML value ({problem})") from None


def model_settings(args: argparse.Namespace) -> dict:
    """The ``--set`` pairs as model overrides, every value parsed as YAML and checked like a recipe's
    ``model_overrides`` (a one-line ``ConfigError`` naming the key)."""
    from mambaspike.training.recipes import check_model_overrides

    values = {key: _yaml_value(text, f"--set {key}={text}") for key, text in args.settings}
    return check_model_overrides(values, "--set", what="model key")


def add_budget(p: argparse.ArgumentParser) -> None:
    """Options shared by compare and ablate: data set, training budget and model settings."""
    from mambaspike.training.config import TrainConfig

    d = TrainConfig()
    add_dataset(p, d.dataset)
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help="training epochs per run")
    p.add_argument("--subset", type=positive_int, default=None, metavar="N", help="at most N samples per split")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=positive_float, default=d.lr, help="peak learning rate")
    p.add_argument("--seeds", type=int_list, default=[0], metavar="S,S,...", help="seeds, comma-separated")
    p.add_argument("--data-dir", default=None, help="where data sets live")
    p.add_argument(
        "--model-config",
        type=json_dict,
        default={},
        metavar="JSON",
        help='ModelConfig overrides for every run, e.g. \'{"d_model": 64, "n_layers": 1}\'',
    )
    add_model_settings(p, overrides="--model-config")
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="augment every run's train split alike (the data set's spatial shift / flip / event drop and jitter); "
        "default: on where the data set defines an augmentation",
    )
    p.add_argument(
        "--augment-events",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also train every run on the robustness study's event perturbations (half of the samples: "
        "drop up to 0.5, spatial jitter up to 1 px, background up to 1:1, levels drawn per sample)",
    )
    add_augment_set(p)
    add_select(p)
    p.add_argument("--output-dir", required=True, metavar="DIR", help="tables, plots and runs/ go here")
    add_threads(p)
    p.add_argument("--latency-repeats", type=positive_int, default=10, help="timed batch-1 passes per run")


def add_augment_set(p: argparse.ArgumentParser) -> None:
    """``--augment-set KEY=VALUE`` (repeatable): one field of the data set's augmentation each."""
    p.add_argument(
        "--augment-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one field of the data set's augmentation (max_shift, flip_x, drop, drop_max, jitter_px, "
        "noise_max, event_p; the value in YAML), e.g. --augment-set drop_max=0.5 --augment-set jitter_px=1.0 "
        "(N-Digits' drop range and per-event jitter, measured in the README); repeatable",
    )


def augment_settings(args: argparse.Namespace) -> dict:
    """The ``--augment-set`` pairs as a mapping, every value parsed as YAML and checked
    (``data.augment.check_augment_set``: a one-line ``ConfigError`` naming the key)."""
    from mambaspike.data.augment import check_augment_set

    values = {}
    for pair in getattr(args, "augment_set", None) or []:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--augment-set {pair}: expected KEY=VALUE, e.g. jitter_px=1.0")
        values[key.strip()] = _yaml_value(text, f"--augment-set {pair}")
    return check_augment_set(values, "--augment-set")


def budget_config(args: argparse.Namespace):
    """The ``TrainConfig`` of the budget options; ``--set`` wins over ``--model-config``, both checked."""
    from mambaspike.training.config import TrainConfig
    from mambaspike.training.recipes import check_model_overrides

    overrides = {**check_model_overrides(args.model_config, "--model-config", what="model key"), **model_settings(args)}
    return TrainConfig(
        dataset=args.dataset,
        epochs=args.epochs,
        subset=args.subset,
        batch_size=args.batch_size,
        lr=args.lr,
        data_dir=args.data_dir,
        threads=args.threads,
        progress=False,
        augment=args.augment,
        augment_events=args.augment_events,
        augment_set=augment_settings(args),
        select=args.select,
        model_overrides=overrides,
    ).validate()
