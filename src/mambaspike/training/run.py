"""A training run read back from its directory: its configuration, its checkpoints' models, its data.

>>> run = load_run("outputs/ndigits-mambaspike-seed0")
>>> model = run.model()              # the best-by-validation checkpoint's weights, eval mode
>>> test = run.data("test")          # the test split, binned as the run was trained
>>> run.config.epochs, run.model_config.d_model

The directory is the one ``mambaspike train`` writes (see :mod:`mambaspike.training.checkpoint`):
``run.json`` holds the resolved training configuration, the model record and the data description;
``checkpoints/<tag>.json`` names each checkpoint's weights. ``run.json`` also holds ``"resolved"``, the
fully resolved configuration that decides the run's results (:func:`resolved_config`), and
``"config_hash"``, its SHA-256 (:func:`config_hash`): ``compare``, ``ablate`` reuse a run directory only
when the hash matches. Directories written before the hash existed load as before; their resolved
configuration is recomputed from ``run.json``'s ``"train"`` and ``"model"`` sections.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from mambaspike.errors import CheckpointError, ConfigError
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model
from mambaspike.training.checkpoint import load_record, load_weights, read_json
from mambaspike.training.config import TrainConfig

SPLITS = ("train", "val", "test")

# TrainConfig fields that change a run's results (the rest: where files live, threads, progress bar,
# device choice, checkpoint cadence, download permission).
RESULT_FIELDS = (
    "dataset",
    "time_window_us",
    "dt_us",
    "subset",
    "augment",
    "seed",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_epochs",
    "grad_clip",
    "amp",
)
# ModelConfig fields the data set derives (compared through dataset / time_window_us / dt_us).
_DERIVED = ("input_shape", "num_classes", "dt_ms")


def resolved_config(train: dict, model: dict, version: str) -> dict:
    """The configuration that decides a run's results, as plain JSON: the ``RESULT_FIELDS`` of the
    training configuration ``train`` (binning resolved to the data set's values), ``model``: the model
    configuration after overrides (less the fields the data set derives), and ``mambaspike_version``."""
    resolved = {k: train.get(k) for k in RESULT_FIELDS}
    resolved["model"] = {k: v for k, v in model.items() if k not in _DERIVED}
    resolved["mambaspike_version"] = version
    return json.loads(json.dumps(resolved, sort_keys=True))  # tuples -> lists, as read back from run.json


def config_hash(resolved: dict) -> str:
    """SHA-256 (hex) of a :func:`resolved_config`, over its canonical JSON."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def config_diff(there: dict, asked: dict) -> list[str]:
    """``"field: <there> there, <asked> asked"`` for every field where two resolved configurations
    differ (model fields as ``model.<field>``)."""
    diff = []
    for k in sorted(set(there) | set(asked), key=lambda k: (k == "model", k)):
        if k == "model":
            a, b = there.get(k) or {}, asked.get(k) or {}
            diff += [
                f"model.{m}: {a.get(m)!r} there, {b.get(m)!r} asked"
                for m in sorted(set(a) | set(b))
                if a.get(m) != b.get(m)
            ]
        elif there.get(k) != asked.get(k):
            diff.append(f"{k}: {there.get(k)!r} there, {asked.get(k)!r} asked")
    return diff


def record_resolved(record: dict) -> dict:
    """The resolved configuration of a ``run.json`` record: its ``"resolved"`` entry, else (directories
    from before it existed) recomputed from its ``"train"`` and ``"model"`` sections."""
    if "resolved" in record:
        return record["resolved"]
    return resolved_config(record["train"], record["model"], record.get("mambaspike_version", "unknown"))


class Run:
    """A run directory. ``config``: the resolved :class:`TrainConfig` it was trained with;
    ``model_config``: its :class:`ModelConfig`; ``record``: ``run.json`` as read."""

    def __init__(self, path: str | Path, device: str | torch.device | None = None, data_dir: str | None = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(f"{self.path}: no such run directory (expected the --output-dir of a training run)")
        self.record: dict = read_json(self.path / "run.json", "run configuration (run.json)")
        try:
            self.config = TrainConfig.from_dict(self.record["train"])
            self.model_config = ModelConfig.from_dict(self.record["model"])
        except KeyError as e:
            raise CheckpointError(f"{self.path / 'run.json'}: no {e.args[0]!r} section") from None
        except ConfigError as e:
            raise CheckpointError(f"{self.path / 'run.json'}: {e}") from None
        self.device = device
        self.data_dir = data_dir
        self._data: dict = {}

    @property
    def resolved_config(self) -> dict:
        """The fully resolved configuration (:func:`resolved_config`) of the run."""
        return record_resolved(self.record)

    @property
    def config_hash(self) -> str:
        """The hash of :attr:`resolved_config` (the stored one where ``run.json`` has it)."""
        return self.record.get("config_hash") or config_hash(self.resolved_config)

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, tag: str = "best") -> dict:
        """The record of checkpoint ``tag`` (``"best"``: selected on validation; ``"last"``)."""
        return load_record(self.checkpoint_dir, tag)

    def model(self, tag: str = "best", device: str | torch.device | None = None) -> nn.Module:
        """The model with checkpoint ``tag``'s weights, in eval mode, on ``device`` (default: the
        ``device`` given to :func:`load_run`, else the CPU)."""
        record = self.checkpoint(tag)
        model = build_model(self.model_config)
        load_weights(self.checkpoint_dir, record, model)
        return model.to(device or self.device or "cpu").eval()

    def datasets(self, data_dir: str | None = None, augment: bool = False):
        """``(train, val, test, info)`` of the data set the run was trained on: the same split, subset,
        time window and bins. ``data_dir``: where the data live now (default: as given to
        :func:`load_run`, else the run's); ``augment``: the train split with the run's augmentation."""
        from mambaspike.data import get_datasets

        t = self.config
        where = data_dir if data_dir is not None else self.data_dir if self.data_dir is not None else t.data_dir
        key = (where, augment)
        if key not in self._data:
            self._data[key] = get_datasets(
                t.dataset,
                where,
                time_window_us=t.time_window_us,
                dt_us=t.dt_us,
                subset=t.subset,
                seed=t.seed,
                augment=augment,
            )
        return self._data[key]

    def data(self, split: str, data_dir: str | None = None, augment: bool | None = None):
        """One split (``"train"``, ``"val"``, ``"test"``) as the run saw it: samples ``(x [T, ...], label)``.
        ``augment``: ``None`` applies the run's train augmentation to the train split, as in training."""
        if split not in SPLITS:
            raise ConfigError(f"Run.data: split {split!r}; expected one of {', '.join(SPLITS)}")
        if augment is None:
            augment = bool(self.config.augment) and split == "train"
        return self.datasets(data_dir, augment)[SPLITS.index(split)]

    @property
    def info(self):
        """The data set's description (shape, classes, bins) as the run trained on it."""
        return self.datasets()[3]

    def __repr__(self) -> str:
        c = self.config
        return f"Run({str(self.path)!r}: {c.model} on {c.dataset}, {c.epochs} epochs, seed {c.seed})"


def load_run(path: str | Path, device: str | torch.device | None = None, data_dir: str | None = None) -> Run:
    """The run in directory ``path`` (see :class:`Run`). ``device``: where :meth:`Run.model` puts models
    (default: the CPU); ``data_dir``: where its data set lives now, if it moved."""
    return Run(path, device=device, data_dir=data_dir)


__all__ = ["Run", "SPLITS", "load_run", "resolved_config", "config_hash", "config_diff", "record_resolved"]
