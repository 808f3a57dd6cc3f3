"""Training recipes: YAML files in ``configs/`` (one per data set x model), validated on loading.

A recipe holds :class:`~mambaspike.training.config.TrainConfig` fields (``dataset``, ``model``, ``epochs``,
``batch_size``, ``lr``, ``weight_decay``, ``warmup_epochs``, ``grad_clip``, ``time_window_us``,
``dt_us``, ``seed``, ``augment``, ...) and ``model_overrides``: a mapping of
:class:`~mambaspike.models.ModelConfig` fields. ``mambaspike train --config X`` starts from the
recipe; options given explicitly on the command line override it.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from mambaspike.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"  # the checkout's configs/
_RUN_ONLY_FIELDS = {"output_dir", "progress", "threads", "data_dir", "model_overrides", "download", "device"}


def recipe_paths() -> list[Path]:
    """Every recipe shipped in ``configs/``, sorted."""
    return sorted(CONFIG_DIR.glob("*.yaml"))


def resolve(name_or_path: str) -> Path:
    """A recipe file: an existing path, or a name in ``configs/`` (with or without ``.yaml``)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / name_or_path, CONFIG_DIR / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"--config {name_or_path}: no such file (nor a recipe in {CONFIG_DIR})")


def load_recipe(name_or_path: str) -> dict:
    """Parse and validate a recipe; returns ``TrainConfig`` keyword arguments (``model_overrides`` included)."""
    import yaml

    from mambaspike.data import dataset_names
    from mambaspike.models.config import ModelConfig
    from mambaspike.models.registry import model_names
    from mambaspike.training.config import DERIVED_MODEL_FIELDS, TrainConfig, model_config

    path = resolve(name_or_path)
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from err
    if not isinstance(recipe, dict):
        raise ConfigError(f"{path}: expected a mapping of training options at the top level")
    train_keys = {f.name for f in fields(TrainConfig)} - _RUN_ONLY_FIELDS
    model_keys = {f.name for f in fields(ModelConfig)} - set(DERIVED_MODEL_FIELDS)
    unknown = sorted(set(recipe) - train_keys - {"model_overrides"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(train_keys))}, model_overrides")
    overrides = recipe.get("model_overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: model_overrides must be a mapping of model settings")
    unknown = sorted(set(overrides) - model_keys)
    if unknown:
        raise ConfigError(f"{path}: unknown model_overrides key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(model_keys))}")
    if "dataset" in recipe and recipe["dataset"] not in dataset_names():
        raise ConfigError(f"{path}: dataset {recipe['dataset']!r} unknown; available: {', '.join(dataset_names())}")
    if "model" in recipe and recipe["model"] not in model_names():
        raise ConfigError(f"{path}: model {recipe['model']!r} unknown; available: {', '.join(model_names())}")
    defaults = TrainConfig()
    for key, value in recipe.items():
        default = getattr(defaults, key, None)
        if key == "model_overrides" or default is None or value is None:
            continue
        expected = type(default)
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: {key} must be {expected.__name__}, got {value!r}")
    try:
        model_config(TrainConfig(model=recipe.get("model", TrainConfig.model), model_overrides=overrides))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    overrides = {k: ModelConfig.accepts(k).normalise(v) for k, v in overrides.items()}
    return {**recipe, "model_overrides": overrides}
