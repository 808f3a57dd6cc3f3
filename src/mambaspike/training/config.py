"""The training configuration: what ``mambaspike train`` runs (data set, model, budget, optimiser, output)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from mambaspike.errors import ConfigError
from mambaspike.models.config import ModelConfig

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
    augment: bool = False  # the data set's train-split augmentation (DatasetEntry.augment)
    download: bool = False  # let tonic fetch a missing data set (where it can)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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
