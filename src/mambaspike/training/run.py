"""A training run read back from its directory: its configuration, its checkpoints' models, its data.

>>> run = load_run("outputs/ndigits-mambaspike-seed0")
>>> model = run.model()              # the best-by-validation checkpoint's weights, eval mode
>>> test = run.data("test")          # the test split, binned as the run was trained
>>> run.config.epochs, run.model_config.d_model

The directory is the one ``mambaspike train`` writes (see :mod:`mambaspike.training.checkpoint`):
``run.json`` holds the resolved training configuration, the model record and the data description;
``checkpoints/<tag>.json`` names each checkpoint's weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mambaspike.errors import CheckpointError, ConfigError
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model
from mambaspike.training.checkpoint import load_record, load_weights, read_json
from mambaspike.training.config import TrainConfig

SPLITS = ("train", "val", "test")


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


__all__ = ["Run", "SPLITS", "load_run"]
