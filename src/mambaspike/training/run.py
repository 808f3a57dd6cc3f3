"""A training run and the directory that holds it: create, open, resume; its configuration, its
tagged checkpoints, its log, its data.

>>> run = load_run("outputs/ndigits-mambaspike-seed0")   # open
>>> model = run.model()              # the best-by-validation checkpoint's weights, eval mode
>>> test = run.data("test")          # the test split, binned as the run was trained
>>> run.config.epochs, run.model_config.d_model

The trainer (:mod:`mambaspike.training.trainer`) makes its runs with :meth:`Run.create` (a fresh
directory, or an existing one with ``overwrite``) and :meth:`Run.resume` (the saved configuration wins;
see there what may change), then writes through the run: :meth:`Run.write_record` (``run.json``),
:meth:`Run.save_checkpoint` / :meth:`Run.restore_checkpoint`, :meth:`Run.append_log` /
:meth:`Run.trim_log` and :meth:`Run.write_metrics`.

The directory is the one ``mambaspike train`` writes (see :mod:`mambaspike.training.checkpoint`):
``run.json`` holds the resolved training configuration, the model record and the data description;
``checkpoints/<tag>.json`` names each checkpoint's weights. ``run.json`` also holds ``"resolved"``, the
fully resolved configuration that decides the run's results (:func:`resolved_config`), and
``"config_hash"``, its SHA-256 (:func:`config_hash`): ``compare``, ``ablate`` reuse a run directory only
when the hash matches. Directories written before the hash existed load as before; their resolved
configuration is recomputed from ``run.json``'s ``"train"`` and ``"model"`` sections.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from mambaspike.errors import CheckpointError, ConfigError
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model
from mambaspike.training.checkpoint import (
    atomic_write_bytes,
    atomic_write_json,
    load_checkpoint,
    load_record,
    load_weights,
    read_json,
    save_checkpoint,
)
from mambaspike.training.config import TrainConfig, default_output_dir

SPLITS = ("train", "val", "test")
# log.csv: one row per completed epoch
LOG_COLUMNS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
    "lr",
    "epoch_seconds",
    "is_best",
]
RESUME_RECORDS = ("last.json", "last.json.prev")  # the checkpoint records a resume starts from
DIAGNOSTICS = "diagnostics.jsonl"  # one JSON line per epoch (mambaspike.evaluation.diagnostics)
RUN_FILES = ("log.csv", DIAGNOSTICS, "metrics.json")  # what a run writes beside run.json and checkpoints/

# TrainConfig fields that change a run's results (the rest: where files live, threads, progress bar,
# device choice, checkpoint cadence, download permission).
RESULT_FIELDS = (
    "dataset",
    "time_window_us",
    "dt_us",
    "subset",
    "augment",
    "augment_events",
    "select",
    "seed",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_epochs",
    "grad_clip",
    "amp",
)
# RESULT_FIELDS added after runs were recorded, with the value those runs were trained with.
TRAIN_RECORDED_BEFORE = {"augment_events": False, "select": "accuracy"}


def recorded_train(train: dict) -> dict:
    """A record's ``train`` section with ``TRAIN_RECORDED_BEFORE``'s value for each field it predates."""
    return {**TRAIN_RECORDED_BEFORE, **train}


# ModelConfig fields the data set derives (compared through dataset / time_window_us / dt_us).
_DERIVED = ("input_shape", "num_classes", "dt_ms")


def _family_model(model: dict) -> dict:
    """The model fields that decide a run's results: those its family uses (``models.config.FAMILIES``;
    the flat record holds every family's), less the ones the data set derives; a field the record
    predates counts with the value it was trained with (``models.config.RECORDED_BEFORE``)."""
    from mambaspike.models.config import FAMILIES, RECORDED_BEFORE

    model = {**RECORDED_BEFORE, **model}
    family = FAMILIES.get(model.get("name"))
    used = {"name", *family[1]} if family else set(model)
    return {k: v for k, v in model.items() if k in used and k not in _DERIVED}


def train_augmentation(train: dict, recorded_before: bool = False) -> dict | None:
    """The train split's augmentation a training configuration ``train`` (a ``TrainConfig`` as a dict,
    ``augment`` resolved) applies, as the fields of a ``data.registry.Augment``; ``None`` for none or for
    a data set that is not of events (or no longer registered). ``recorded_before``: as runs recorded
    before run records held it were trained with (``data.registry.AUGMENT_RECORDED_BEFORE``)."""
    from mambaspike.data.augment import train_augment
    from mambaspike.data.errors import DatasetError
    from mambaspike.data.registry import AUGMENT_RECORDED_BEFORE, get_entry

    try:
        entry = get_entry(train.get("dataset"))
    except DatasetError:
        return None
    if entry.kind != "events":
        return None
    base = AUGMENT_RECORDED_BEFORE.get(entry.name, entry.augment) if recorded_before else entry.augment
    augment, events = bool(train.get("augment")), bool(train.get("augment_events"))
    aug = train_augment(base, augment, events, train.get("augment_set") or None)
    return asdict(aug) if aug is not None else None


def resolved_config(train: dict, model: dict, version: str, recorded_before: bool = False) -> dict:
    """The configuration that decides a run's results, as plain JSON: the ``RESULT_FIELDS`` of the
    training configuration ``train`` (binning resolved to the data set's values), ``augmentation``: the
    train split's augmentation it applies (:func:`train_augmentation`; ``recorded_before`` for records
    that predate it), ``model``: the model configuration after overrides (the fields its family uses,
    less those the data set derives), and ``mambaspike_version``."""
    train = recorded_train(train)
    resolved = {k: train.get(k) for k in RESULT_FIELDS}
    resolved["augmentation"] = train_augmentation(train, recorded_before)
    resolved["model"] = _family_model(model)
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
    from before it existed) recomputed from its ``"train"`` and ``"model"`` sections; a training field
    the record predates counts with the value it was trained with (``TRAIN_RECORDED_BEFORE``; the
    augmentation: :func:`train_augmentation` with ``recorded_before``)."""
    if "resolved" in record:
        resolved = {**TRAIN_RECORDED_BEFORE, **record["resolved"]}
        resolved["model"] = _family_model(resolved.get("model") or {})
        if "augmentation" not in resolved:
            resolved["augmentation"] = train_augmentation(resolved, recorded_before=True)
        return json.loads(json.dumps(resolved, sort_keys=True))
    version = record.get("mambaspike_version", "unknown")
    return resolved_config(record["train"], record["model"], version, recorded_before=True)


def run_label(run_dir: Path, family: str) -> str:
    """A run's row label: the named variant (``models.config.VARIANTS``) its directory is named after
    (``<dataset>-<variant>-seed<seed>``, as ``compare`` names them), else its model family."""
    from mambaspike.models.config import VARIANTS

    name = Path(run_dir).name
    for variant, (fam, _) in VARIANTS.items():
        if fam == family and f"-{variant}-seed" in name:
            return variant
    return family


class Run:
    """A run directory. ``config``: the resolved :class:`TrainConfig` it was trained with;
    ``model_config``: its :class:`ModelConfig`; ``record``: ``run.json`` as read (or as written)."""

    def __init__(self, path: str | Path, device: str | torch.device | None = None, data_dir: str | None = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(f"{self.path}: no such run directory (expected the --output-dir of a training run)")
        self.device = device
        self.data_dir = data_dir
        self._data: dict = {}
        self._set_record(read_json(self.path / "run.json", "run configuration (run.json)"))

    def _set_record(self, record: dict) -> None:
        try:
            self.config = TrainConfig.from_dict(recorded_train(record["train"]))
            self.model_config = ModelConfig.from_dict(record["model"])
        except KeyError as e:
            raise CheckpointError(f"{self.path / 'run.json'}: no {e.args[0]!r} section") from None
        except ConfigError as e:
            raise CheckpointError(f"{self.path / 'run.json'}: {e}") from None
        self.record = record

    @classmethod
    def _in(cls, path: Path, cfg: TrainConfig) -> Run:
        """A run whose ``run.json`` is not (yet) read: ``config`` is ``cfg``, no model config yet."""
        run = cls.__new__(cls)
        run.path, run.device, run.data_dir, run._data = path, None, None, {}
        run.config, run.model_config, run.record = cfg, None, None
        return run

    @classmethod
    def create(cls, cfg: TrainConfig, overwrite: bool = False) -> Run:
        """A new run in ``cfg.output_dir`` (default ``outputs/<dataset>-<model>-seed<seed>``). A directory
        that already holds a run is refused unless ``overwrite``; then its run files (``run.json``,
        ``log.csv``, ``metrics.json``, checkpoints) are removed and nothing else. ``run.json`` is
        written by :meth:`write_record` once the data set and model are known; ``cfg.output_dir`` is set."""
        out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg)
        run_json = out / "run.json"
        if run_json.exists() and not overwrite:
            raise ConfigError(
                f"{out} already holds a run; pass --resume to continue it, --overwrite to start again, "
                "or choose another --output-dir"
            )
        if run_json.exists():
            for f in [run_json, *(out / n for n in RUN_FILES), *(out / "checkpoints").glob("*")]:
                f.unlink(missing_ok=True)
        cfg.output_dir = str(out)
        return cls._in(out, cfg)

    @classmethod
    def resume(cls, cfg: TrainConfig, extend_epochs: bool = False) -> Run:
        """The run in ``cfg.output_dir``, to continue. Its saved configuration wins: only the progress
        bar, threads, device and ``data_dir`` may change, and ``epochs`` only with ``extend_epochs`` and
        only upwards (``cfg.epochs = None`` keeps the saved). ``config`` is the merged configuration."""
        out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg)
        run_json = out / "run.json"
        if not run_json.is_file():
            raise ConfigError(f"--resume: {out} holds no run to resume (no run.json); train without --resume first")
        record = read_json(run_json, "run configuration (run.json)")
        try:
            saved = TrainConfig.from_dict(recorded_train(record["train"]))
        except (KeyError, TypeError):
            raise CheckpointError(f"{run_json}: no 'train' section") from None
        epochs = saved.epochs if cfg.epochs is None else cfg.epochs
        if epochs != saved.epochs and not extend_epochs:
            raise ConfigError(
                f"--epochs {epochs}: the run in {out} was created for {saved.epochs} epochs and its learning-rate "
                f"schedule is fixed; resume without --epochs, or pass --extend-epochs to stretch the schedule"
            )
        if epochs < saved.epochs:
            raise ConfigError(
                f"--extend-epochs: --epochs {epochs} is fewer than the run's {saved.epochs}; it only extends a run"
            )
        saved.epochs, saved.progress, saved.threads, saved.device = epochs, cfg.progress, cfg.threads, cfg.device
        if cfg.data_dir is not None:
            saved.data_dir = cfg.data_dir
        saved.output_dir = str(out)
        run = cls._in(out, saved)
        run.record = record
        return run

    @property
    def started(self) -> bool:
        """Whether the run has a checkpoint to resume from (``last``, or the one before it)."""
        return any((self.checkpoint_dir / r).exists() for r in RESUME_RECORDS)

    @property
    def schedule(self) -> dict | None:
        """``run.json``'s learning-rate schedule (steps per epoch, warm-up and total steps), if written."""
        return (self.record or {}).get("schedule")

    def write_record(self, record: dict) -> None:
        """Write ``run.json`` (atomically) and take it as this run's record."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path / "run.json", record)
        self._set_record(record)

    def clear_progress(self) -> None:
        """Remove the log, metrics and checkpoint records of a run that never reached its first checkpoint."""
        self.path.mkdir(parents=True, exist_ok=True)
        ckpt = self.checkpoint_dir
        for f in [*(self.path / n for n in RUN_FILES), *ckpt.glob("*.json"), *ckpt.glob("*.json.prev")]:
            f.unlink(missing_ok=True)

    def save_checkpoint(
        self, tag: str, model: nn.Module, record: dict, optimizer_state: dict | None = None, keep_previous=False
    ) -> dict:
        """Checkpoint ``tag`` (see :func:`mambaspike.training.checkpoint.save_checkpoint`)."""
        return save_checkpoint(self.checkpoint_dir, tag, model, record, optimizer_state, keep_previous)

    def restore_checkpoint(self, tag: str = "last", log=None) -> dict:
        """The verified record of checkpoint ``tag``, falling back to the previous one when it is unreadable
        (:func:`mambaspike.training.checkpoint.load_checkpoint`)."""
        return load_checkpoint(self.checkpoint_dir, tag, log=log)

    @property
    def log_path(self) -> Path:
        return self.path / "log.csv"

    def append_log(self, row: dict) -> None:
        """Append one epoch's row (``LOG_COLUMNS``) to ``log.csv``."""
        new = not self.log_path.exists()
        with open(self.log_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
            if new:
                w.writeheader()
            w.writerow(row)

    def append_diagnostics(self, row: dict) -> None:
        """Append one epoch's diagnostics (a dict with ``"epoch"``) to ``diagnostics.jsonl``."""
        with open(self.path / DIAGNOSTICS, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")

    def trim_log(self, completed_epochs: int) -> None:
        """Keep the rows of completed epochs only in ``log.csv`` and ``diagnostics.jsonl`` (a kill may have
        logged an epoch it did not checkpoint, or left half a row); rewritten atomically."""
        diag = self.path / DIAGNOSTICS
        if diag.exists():
            kept = []
            for line in diag.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("epoch"), int) and row["epoch"] <= completed_epochs:
                    kept.append(json.dumps(row, sort_keys=True) + "\n")
            atomic_write_bytes(diag, "".join(kept).encode())
        if not self.log_path.exists():
            return
        with open(self.log_path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if (r.get("epoch") or "").isdigit() and None not in r.values()]
        rows = [r for r in rows if int(r["epoch"]) <= completed_epochs]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_bytes(self.log_path, buf.getvalue().encode())

    def write_metrics(self, metrics: dict) -> None:
        atomic_write_json(self.path / "metrics.json", metrics)

    @property
    def resolved_config(self) -> dict:
        """The fully resolved configuration (:func:`resolved_config`) of the run."""
        return record_resolved(self.record)

    @property
    def config_hash(self) -> str:
        """The hash of :attr:`resolved_config` (recomputed: a record from before a model field existed
        counts that field with the value it was trained with)."""
        return config_hash(self.resolved_config)

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
                augment=augment and bool(t.augment),
                augment_events=augment and t.augment_events,
                augment_set=t.augment_set if augment and t.augment else None,
            )
        return self._data[key]

    def data(self, split: str, data_dir: str | None = None, augment: bool | None = None):
        """One split (``"train"``, ``"val"``, ``"test"``) as the run saw it: samples ``(x [T, ...], label)``.
        ``augment``: ``None`` applies the run's train augmentation to the train split, as in training."""
        if split not in SPLITS:
            raise ConfigError(f"Run.data: split {split!r}; expected one of {', '.join(SPLITS)}")
        if augment is None:
            augment = bool(self.config.augment or self.config.augment_events) and split == "train"
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


__all__ = [
    "LOG_COLUMNS",
    "Run",
    "SPLITS",
    "load_run",
    "run_label",
    "resolved_config",
    "recorded_train",
    "config_hash",
    "config_diff",
    "record_resolved",
]
