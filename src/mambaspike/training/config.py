"""The training configuration: what ``mambaspike train`` runs (data set, model, budget, optimiser, output)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from mambaspike.errors import ConfigError
from mambaspike.models.config import ModelConfig

# the checkpoint-selection rules (TrainConfig.select), the default first
SELECT_RULES = ("accuracy-then-loss", "accuracy")
# ModelConfig fields the data set and the trainer set, never model_overrides:
DERIVED_MODEL_FIELDS = ("name", "input_shape", "num_classes", "dt_ms")


@dataclass
class TrainConfig:
    """One training run. ``model_overrides``: :class:`~mambaspike.models.ModelConfig` fields set on top of
    the model family's defaults (validated when the run starts)."""

    dataset: str = "ndigits"
    model: str = "mambaspike"
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0
    time_window_us: int | None = None  # None: the data set's default
    dt_us: int | None = None
    data_dir: str | None = None
    output_dir: str | None = None  # None: outputs/<dataset>-<model>-seed<seed>
    seed: int = 0
    subset: int | None = None
    save_every: int = 50  # steps between mid-epoch checkpoints
    threads: int | None = None
    progress: bool = True
    amp: bool = False  # bf16 autocast of forward + loss on a CUDA GPU (refused without one)
    device: str = "auto"  # "auto" (CUDA if available), "cpu", "cuda", "cuda:N"
    model_overrides: dict = field(default_factory=dict)
    # the data set's train-split augmentation (DatasetEntry.augment); None: on where the data set defines
    # one (resolved by validate())
    augment: bool | None = None
    # also train on the robustness study's event perturbations, at levels drawn per sample
    # (data.augment.EVENT_AUGMENT); event data sets only
    augment_events: bool = False
    # fields of the data set's augmentation replaced (data.registry.Augment fields, e.g. {"jitter_px": 1.0};
    # --augment-set); only where the augmentation is on
    augment_set: dict = field(default_factory=dict)
    # which epoch's weights are the run's result: "accuracy-then-loss" (highest validation accuracy, ties
    # broken by the lower validation loss) or "accuracy" (the first epoch at the highest validation
    # accuracy; runs recorded before this field existed were selected so)
    select: str = "accuracy-then-loss"
    download: bool = False  # let tonic fetch a missing data set (where it can)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def validate(self) -> TrainConfig:
        """Check every value (types, ranges, choices, paths) and the checks between them (``dt_us`` within
        ``time_window_us``, ``--augment`` only where the data set defines an augmentation); the first bad
        value is one :class:`ConfigError` naming the key, the value and what is accepted. Model values
        are checked by :func:`model_config`. Returns ``self``."""
        for f in fields(self):
            check_value(f.name, getattr(self, f.name))
        from mambaspike.data import get_entry  # the data layer lies below: no cycle

        entry = get_entry(self.dataset)
        if entry.fixed_binning and (self.time_window_us, self.dt_us) != (None, None):
            given = [
                f"{_label(k)} = {v!r}"
                for k, v, d in (
                    ("time_window_us", self.time_window_us, entry.time_window_us),
                    ("dt_us", self.dt_us, entry.dt_us),
                )
                if v is not None and v != d
            ]
            if given:
                raise ConfigError(
                    f"--time-window/--dt do not apply to {self.dataset}: its sample length is fixed "
                    f"({'; '.join(given)} given; leave them unset)"
                )
        window = entry.time_window_us if self.time_window_us is None else self.time_window_us
        dt = entry.dt_us if self.dt_us is None else self.dt_us
        if dt > window:
            raise ConfigError(
                f"{_label('dt_us')} = {dt!r}: expected at most {_label('time_window_us')} ({window} µs"
                f"{', the default of ' + self.dataset if self.time_window_us is None else ''})"
            )
        if self.augment_events and entry.kind != "events":
            raise ConfigError(f"augment_events (--augment-events): {self.dataset} is not an event data set")
        if self.augment is None:
            self.augment = augmentation_applies(entry)
        elif self.augment and not augmentation_applies(entry):
            with_aug = [e for e in _entries() if augmentation_applies(e)]
            raise ConfigError(
                f"augment (--augment): {self.dataset} defines no augmentation; "
                f"data sets that do: {', '.join(e.name for e in with_aug)}"
            )
        if self.augment_set:
            from mambaspike.data.augment import check_augment_set

            self.augment_set = check_augment_set(self.augment_set)
            if not self.augment:
                raise ConfigError(
                    f"augment_set (--augment-set): changes the data set's augmentation, which is off for "
                    f"{self.dataset} (--no-augment, or it defines none)"
                )
        return self


def _label(key: str) -> str:
    """A field's name, with its command-line option where the names differ."""
    option = {"time_window_us": "--time-window", "dt_us": "--dt", "select": "--select"}.get(key)
    return f"{key} ({option})" if option else key


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _not_a_file(v) -> bool:
    return isinstance(v, (str, os.PathLike)) and str(v) != "" and not Path(v).expanduser().is_file()


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _rules() -> dict:
    """Each field: (accepts(value), what is accepted)."""
    from mambaspike.data import dataset_names
    from mambaspike.models.registry import model_names

    positive_int = (lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    optional_positive_int = (lambda v: v is None or (_is_int(v) and v >= 1), "an integer >= 1 (or unset)")
    nonneg = (lambda v: _is_number(v) and v >= 0, "a finite number >= 0")
    flag = (lambda v: isinstance(v, bool), "true or false")
    directory = (lambda v: v is None or _not_a_file(v), "a directory path (not a file), or unset")
    datasets, models = dataset_names(), model_names()
    return {
        "dataset": (lambda v: v in datasets, f"one of {', '.join(datasets)}"),
        "model": (lambda v: v in models, f"one of {', '.join(models)}"),
        "epochs": (lambda v: v is None or (_is_int(v) and v >= 1), "an integer >= 1"),  # unset: a resumed run's own
        "batch_size": positive_int,
        "lr": (lambda v: _is_number(v) and v > 0, "a finite number > 0"),
        "weight_decay": nonneg,
        "warmup_epochs": nonneg,
        "grad_clip": nonneg,
        "time_window_us": optional_positive_int,
        "dt_us": optional_positive_int,
        "data_dir": directory,
        "output_dir": directory,
        "seed": (lambda v: _is_int(v) and 0 <= v < 2**32, "an integer in [0, 2**32)"),
        "subset": optional_positive_int,
        "save_every": positive_int,
        "threads": optional_positive_int,
        "progress": flag,
        "amp": flag,
        "device": (lambda v: isinstance(v, str) and _DEVICE.fullmatch(v) is not None, "auto, cpu, cuda or cuda:N"),
        "model_overrides": (lambda v: isinstance(v, dict), "a mapping of model settings"),
        "augment_set": (lambda v: isinstance(v, dict), "a mapping of augmentation fields"),
        "augment": (lambda v: v is None or isinstance(v, bool), "true, false or unset (the data set's default)"),
        "augment_events": flag,
        "select": (lambda v: v in SELECT_RULES, f"one of {', '.join(SELECT_RULES)}"),
        "download": flag,
    }


def check_value(key: str, value) -> None:
    """One :class:`TrainConfig` value against what its field accepts: a ``ConfigError``
    (``lr = -1: expected a finite number > 0``) where it does not."""
    ok, what = _rules()[key]
    if not ok(value):
        raise ConfigError(f"{_label(key)} = {value!r}: expected {what}")


def augmentation_applies(entry) -> bool:
    """Whether ``--augment`` changes anything for a data set (an event data set with a non-trivial
    :class:`~mambaspike.data.registry.Augment`)."""
    aug = entry.augment
    return entry.kind == "events" and (aug.max_shift > 0 or aug.flip_x or aug.drop > 0)


def _entries() -> list:
    from mambaspike.data import dataset_names, get_entry

    return [get_entry(n) for n in dataset_names()]


def default_output_dir(cfg: TrainConfig) -> Path:
    return Path("outputs") / f"{cfg.dataset}-{cfg.model}-seed{cfg.seed}"


def model_config(cfg: TrainConfig, **derived) -> ModelConfig:
    """The validated :class:`ModelConfig` of a run: family ``cfg.model``, the data set's ``derived``
    fields (``input_shape``, ``num_classes``, ``dt_ms``; the defaults where not given) and
    ``cfg.model_overrides`` on top. A bad override is one ``ConfigError`` naming it, its value and what
    it accepts (``model_overrides.window = 0: expected an integer >= 1``)."""
    overrides = dict(cfg.model_overrides or {})
    fixed = [k for k in overrides if k in DERIVED_MODEL_FIELDS]
    if fixed:
        raise ConfigError(f"model_overrides: {', '.join(fixed)} are set by the data set and --model, not overridden")
    names = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        allowed = ", ".join(sorted(names - set(DERIVED_MODEL_FIELDS)))
        raise ConfigError(f"model_overrides: unknown key(s) {', '.join(map(str, unknown))}; allowed: {allowed}")
    for key, value in overrides.items():
        overrides[key] = ModelConfig.accepts(key).check("model_overrides", key, value)
    return ModelConfig(name=cfg.model, **derived, **overrides)
