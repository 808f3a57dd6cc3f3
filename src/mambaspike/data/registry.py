"""The data-set registry: one :class:`DatasetEntry` per data set, each defined in its own module.

To add a data set, write a module with an ``ENTRY = DatasetEntry(...)`` and list it in ``_MODULES``.
Two kinds of entries:

- ``"events"``: ``open(data_dir, download)`` returns ``(train, test)`` event sources
  (``len``, ``source[i] -> (events, label)``, ``sensor_size``, ``targets``, ``identity()``); they are
  binned (``frames.py``) with ``time_window_us`` / ``dt_us`` and cached on disk. Samples are float32
  ``[T, P, H, W]`` (``input_shape = (P, H, W)``) or, for one-dimensional sensors ``(F, 1, 1)``,
  ``[T, F]`` (``input_shape = (F,)``).
- ``"arrays"``: ``open`` returns ``(train, test)`` :class:`~mambaspike.data.arrays.ArraySource`s whose
  samples are already float32 ``[T, ...]`` (static images ``[1, C, H, W]``, sequences ``[T, F]``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mambaspike.data.errors import DatasetError, DatasetMissing


@dataclass(frozen=True)
class Augment:
    """Train-split augmentation of binned event frames ``[T, P, H, W]`` (see ``augment.py``).

    max_shift: largest spatial shift in pixels (uniform in ``[-max_shift, max_shift]`` per axis).
    flip_x: random left-right flip (only where the labels allow it: not DVS Gesture's left/right waves).
    drop: probability of dropping each event (binomial thinning of the counts).
    drop_max: if above ``drop``, each sample's drop probability is uniform in ``[drop, drop_max]``.
    jitter_px: each sample's spatial jitter sigma is uniform in ``[0, jitter_px]`` pixels (each event
        moved by ``round(N(0, sigma))`` in x and y).
    noise_max: each sample gets background events, ``ratio x`` its own event count with the ratio
        uniform in ``[0, noise_max]``, spread uniformly over bins, polarities and pixels.
    event_p: the probability that a sample gets the drop range, jitter and background events at all
        (the others are served with the fixed ``drop`` only).
    """

    max_shift: int = 0
    flip_x: bool = False
    drop: float = 0.0
    drop_max: float = 0.0
    jitter_px: float = 0.0
    noise_max: float = 0.0
    event_p: float = 1.0


@dataclass(frozen=True)
class DatasetEntry:
    """Everything the registry, the trainer and ``mambaspike datasets`` need to know about a data set."""

    name: str
    summary: str  # one line: what it is, classes, sensor / sample shape
    layout: str  # the expected folder layout under --data-dir
    source: str  # where to obtain it
    open: Callable[[Path, bool], tuple]  # (data_dir, download) -> (train, test) sources
    class_names: tuple[str, ...]
    kind: str = "events"  # "events" or "arrays"
    time_window_us: int = 1_000_000  # default binning ("events"; T for "arrays" where it applies)
    dt_us: int = 10_000
    fixed_binning: bool = False  # True: --time-window / --dt do not apply (sample length is fixed)
    augment: Augment = field(default_factory=Augment)  # what --augment does for this data set
    can_download: bool = False  # tonic can fetch it (--download)
    generated: bool = False  # embedded (generated on first use into `folder`, or bundled): never missing
    folder: str = ""  # generated: its folder under the data directory
    to_sample: Callable | None = None  # "arrays": (uint8 item, seed, T) -> float32 [T, ...]


# Modules defining ``ENTRY`` (or ``ENTRIES``), in listing order; the first entry is the default.
_MODULES = [
    "ndigits",
    "nmnist",
    "dvsgesture",
    "dvsmotion",
    "cifar10dvs",
    "shd",
    "ntidigits",
    "tidigits",
    "spoken_digits",
    "mnist",
    "cifar",
    "digits",
]

_REGISTRY: dict[str, DatasetEntry] = {}


def _load() -> dict[str, DatasetEntry]:
    if not _REGISTRY:
        for module_name in _MODULES:
            module = importlib.import_module(f"mambaspike.data.{module_name}")
            for entry in getattr(module, "ENTRIES", None) or [module.ENTRY]:
                _REGISTRY[entry.name] = entry
    return _REGISTRY


def register(entry: DatasetEntry) -> None:
    """Add (or replace) a data set at run time (plugins, tests)."""
    _load()[entry.name] = entry


def dataset_names() -> list[str]:
    """Names accepted by ``get_datasets``; the first is the default."""
    return list(_load())


def get_entry(name: str) -> DatasetEntry:
    registry = _load()
    if name not in registry:
        raise DatasetError(f"unknown data set {name!r}; available: {', '.join(registry)}")
    return registry[name]


# A data set's augmentation as runs recorded before run records held it (``run.json``'s
# ``resolved.augmentation``) were trained with, where the data set's has changed since.
AUGMENT_RECORDED_BEFORE: dict[str, Augment] = {}


def missing(name: str, data_dir: Path, what: str) -> DatasetMissing:
    """The error for a data set that is not under ``data_dir``: names the layout and the source."""
    entry = get_entry(name)
    hint = " (or pass --download)" if entry.can_download else ""
    return DatasetMissing(
        f"{entry.name}: {what} in {data_dir}; expected {entry.layout}; get it from {entry.source}{hint}"
    )
