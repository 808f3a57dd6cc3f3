"""Training recipes: YAML files in ``configs/`` (one per data set x model), validated on loading.

A recipe holds :class:`~mambaspike.training.trainer.TrainConfig` fields (``dataset``, ``model``, ``epochs``,
``batch_size``, ``lr``, ``weight_decay``, ``warmup_epochs``, ``grad_clip``, ``time_window_us``,
``dt_us``, ``seed``, ``augment``, ...) and ``model_overrides``: a mapping of
:class:`~mambaspike.models.ModelConfig` fields. ``mambaspike train --config X`` starts from the
recipe; options given explicitly on the command line override it. ``--set KEY=VALUE`` sets one
``model_overrides`` key from the command line; :func:`check_model_overrides` validates both alike.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from mambaspike.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"  # the checkout's configs/
# Set by the data set and the trainer, never by a recipe:
_DERIVED_MODEL_FIELDS = {"name", "input_shape", "num_classes", "dt_ms"}
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


def _type_error(where: str, key: str, expected: str, value) -> ConfigError:
    hint = ""
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
        hint = f" (YAML reads {value} as text; write it with a decimal point, e.g. {float(value):.1e})"
    return ConfigError(f"{where}: {key} must be {expected}, got {value!r}{hint}")


def model_keys() -> list[str]:
    """The ``ModelConfig`` fields a recipe's ``model_overrides`` (or ``--set``) may set, sorted: all but those
    the data set and the trainer derive."""
    from mambaspike.models.config import ModelConfig

    return sorted({f.name for f in fields(ModelConfig)} - _DERIVED_MODEL_FIELDS)


_PLAIN = (bool, int, float, str, tuple, list, dict, type(None))


def _accepted(hint) -> tuple | None:
    """The plain classes a type hint admits (``int | None`` -> ``(int, NoneType)``), the element class of a
    ``tuple[X, ...]`` or None, or None when the hint is not plain (a ``Literal``: left to ``ModelConfig``)."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    classes, element = [], None
    for arg in typing.get_args(hint) if union else (hint,):
        origin = typing.get_origin(arg) or arg
        if origin not in _PLAIN:
            return None
        if origin is tuple and typing.get_args(arg)[:1] and typing.get_args(arg)[0] in _PLAIN:
            element = typing.get_args(arg)[0]
        classes.append(origin)
    return tuple(classes), element


def _is(value, cls: type) -> bool:
    """``isinstance``, except that a bool is no int and an int is also a float."""
    if cls in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, (int, float) if cls is float else cls)


def _check_value(where: str, key: str, value, hint, default):
    """``value`` as the field ``key`` takes it (an int for a float field becomes a float, a list for a tuple
    field a tuple); a ``ConfigError`` naming ``where`` and ``key`` when its type is not the field's."""
    accepted = _accepted(hint)
    if accepted is None:
        return value
    classes, element = accepted
    if element is None and isinstance(default, tuple) and default:
        element = type(default[0])
    if isinstance(value, (list, tuple)):
        ok = (tuple in classes or list in classes) and (element is None or all(_is(v, element) for v in value))
        if ok:
            value = [float(v) for v in value] if element is float else list(value)
            value = tuple(value) if tuple in classes else value
    else:
        match = next((c for c in classes if c not in (tuple, list) and _is(value, c)), None)
        ok = match is not None
        value = float(value) if match is float else value
    if not ok:
        names = {bool: "true or false", int: "int", float: "float", str: "str", dict: "a mapping", type(None): "null"}
        wanted = " or ".join(names.get(c) or f"a list of {element.__name__ if element else 'values'}" for c in classes)
        raise _type_error(where, key, wanted, value)
    return value


def check_model_overrides(overrides: dict, where: str, what: str = "model_overrides key") -> dict:
    """``overrides`` (``ModelConfig`` field -> value) with every key and every value's type checked, values
    normalised as the field takes them; an unknown key or a value of another type is a one-line
    ``ConfigError`` that starts with ``where`` (the file or option) and names the key. Ranges and choices are
    ``ModelConfig``'s to check, when the model is built."""
    from mambaspike.models.config import ModelConfig

    allowed = model_keys()
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown {what}(s) {_with_closest(unknown, allowed)}; allowed: {', '.join(allowed)}")
    try:
        hints = typing.get_type_hints(ModelConfig)
    except (NameError, TypeError):  # an annotation that does not evaluate here: leave the types to ModelConfig
        hints = {}
    defaults = {f.name: f.default for f in fields(ModelConfig) if f.default is not MISSING}
    return {k: _check_value(where, k, v, hints[k], defaults.get(k)) if k in hints else v for k, v in overrides.items()}


def load_recipe(name_or_path: str) -> dict:
    """Parse and validate a recipe; returns ``TrainConfig`` keyword arguments (``model_overrides`` included)."""
    import yaml

    from mambaspike.data import dataset_names
    from mambaspike.models.registry import model_names
    from mambaspike.training.trainer import TrainConfig

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
        raise ConfigError(f"{path}: unknown key(s) {_with_closest(unknown, sorted(train_keys) + ['model_overrides'])}; "
                          f"allowed: {', '.join(sorted(train_keys))}, model_overrides")
    overrides = recipe.get("model_overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: model_overrides must be a mapping of model settings")
    overrides = check_model_overrides(overrides, str(path))
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
            raise _type_error(str(path), key, expected.__name__, value)
    return {**recipe, "model_overrides": overrides}
