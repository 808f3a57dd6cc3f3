"""Training recipes: YAML files in ``configs/`` (one per data set x model), validated on loading.

A recipe holds :class:`~mambaspike.training.config.TrainConfig` fields (``dataset``, ``model``, ``epochs``,
``batch_size``, ``lr``, ``weight_decay``, ``warmup_epochs``, ``grad_clip``, ``time_window_us``,
``dt_us``, ``seed``, ``augment``, ...) and ``model_overrides``: a mapping of
:class:`~mambaspike.models.ModelConfig` fields. ``mambaspike train --config X`` starts from the
recipe; options given explicitly on the command line override it. ``--set KEY=VALUE`` sets one
``model_overrides`` key from the command line; :func:`check_model_overrides` validates both alike.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import MISSING, fields
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


def _with_closest(unknown: list[str], allowed) -> str:
    """``a (closest: b, c), d``: each unknown name with the valid names nearest to it."""
    out = []
    for name in unknown:
        close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.6)
        out.append(f"{name} (closest: {', '.join(close)})" if close else name)
    return ", ".join(out)


def _yaml_hint(value) -> str:
    """A hint where YAML read a number in exponent notation without a decimal point as text."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
        return f" (YAML reads {value} as text; write it with a decimal point, e.g. {float(value):.1e})"
    return ""


def _type_error(where: str, key: str, expected: str, value) -> ConfigError:
    """``where: key must be <expected>, got <value>``, with a hint where YAML read a number as text."""
    return ConfigError(f"{where}: {key} must be {expected}, got {value!r}{_yaml_hint(value)}")


def model_keys() -> list[str]:
    """The ``ModelConfig`` fields a recipe's ``model_overrides`` (or ``--set``) may set, sorted: all but those
    the data set and the trainer derive."""
    from mambaspike.models.config import ModelConfig
    from mambaspike.training.config import DERIVED_MODEL_FIELDS

    return sorted({f.name for f in fields(ModelConfig)} - set(DERIVED_MODEL_FIELDS))


def check_model_overrides(overrides: dict, where: str, what: str = "model_overrides key", prefix: str = "") -> dict:
    """``overrides`` (``ModelConfig`` field -> value) with every key and value checked, values normalised as
    the field takes them (a list for a tuple field becomes a tuple); an unknown key (with the closest valid
    names) or a value the field does not accept (type, range, choice) is a one-line ``ConfigError`` that
    starts with ``where`` (the file or option), names the key and says what is accepted. Checks between
    fields are made when the model config is built (:func:`mambaspike.training.config.model_config`)."""
    from mambaspike.models.config import ModelConfig

    allowed = model_keys()
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: unknown {what}(s) {_with_closest(unknown, allowed)}; allowed: {', '.join(allowed)}"
        )
    out = {}
    for key, value in overrides.items():
        accepts = ModelConfig.accepts(key)
        out[key] = accepts.normalise(value)
        if out[key] is MISSING:  # the form of ModelConfig's own errors: key = value: expected ...
            raise ConfigError(f"{where}: {prefix}{key} = {value!r}: expected {accepts.describe()}{_yaml_hint(value)}")
    return out


def load_recipe(name_or_path: str) -> dict:
    """Parse and validate a recipe; returns ``TrainConfig`` keyword arguments (``model_overrides`` included)."""
    import yaml

    from mambaspike.data import dataset_names
    from mambaspike.models.registry import model_names
    from mambaspike.training.config import TrainConfig, check_value, model_config

    path = resolve(name_or_path)
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from err
    if not isinstance(recipe, dict):
        raise ConfigError(f"{path}: expected a mapping of training options at the top level")
    train_keys = {f.name for f in fields(TrainConfig)} - _RUN_ONLY_FIELDS
    unknown = sorted(set(recipe) - train_keys - {"model_overrides"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {_with_closest(unknown, sorted(train_keys) + ['model_overrides'])}; "
            f"allowed: {', '.join(sorted(train_keys))}, model_overrides"
        )
    overrides = recipe.get("model_overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: model_overrides must be a mapping of model settings")
    overrides = check_model_overrides(overrides, str(path), prefix="model_overrides.")
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
        ok = isinstance(value, expected) or (
            expected is float and isinstance(value, int) and not isinstance(value, bool)
        )
        if not ok or (expected is int and isinstance(value, bool)):
            raise _type_error(str(path), key, expected.__name__, value)
    try:  # ranges, choices, paths, then the checks between them (binning, augmentation)
        for key, value in recipe.items():
            if key != "model_overrides":
                check_value(key, value)
        TrainConfig(**{k: v for k, v in recipe.items() if k != "model_overrides"}).validate()
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    try:  # the checks between fields, for this recipe's model family
        model_config(TrainConfig(model=recipe.get("model", TrainConfig.model), model_overrides=overrides))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return {**recipe, "model_overrides": overrides}
