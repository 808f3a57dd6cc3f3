"""Data-set registry: names -> train/val/test torch ``Dataset``s of binned event frames.

Every data set here is read from the N-MNIST folder layout by
:class:`~mambaspike.data.nmnist.NMNISTFolder`, binned into frames (``frames.py``), cached on disk
under ``DATA_DIR/cache/`` and served memory-mapped. A sample is ``(frames, label)`` with frames
float32 ``[T, C, H, W]`` (event counts per ``dt_us`` bin, C = polarity: 0 = OFF, 1 = ON);
:func:`collate_time_first` batches them time-first ``[T, B, C, H, W]``.

- ``ndigits`` (default): N-Digits, generated under ``DATA_DIR/N-Digits`` on first use (seconds).
- ``nmnist``: N-MNIST from ``DATA_DIR/NMNIST/{Train,Test}`` (or ``DATA_DIR/{Train,Test}``).
- ``digits``: scikit-learn's 8x8 digits as static images ``[1, 1, 8, 8]`` (T = 1), see ``digits.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from mambaspike.data.digits import get_digits
from mambaspike.data.errors import DatasetError
from mambaspike.data.frames import cached_frames, num_bins
from mambaspike.data.ndigits import ensure_ndigits
from mambaspike.data.nmnist import LAYOUT, NMNIST_URL, NMNISTFolder

__all__ = [
    "DEFAULT_DATA_DIR",
    "DataInfo",
    "DatasetError",
    "FrameDataset",
    "collate_time_first",
    "dataset_defaults",
    "dataset_names",
    "get_datasets",
]


def _default_data_dir() -> Path:
    if os.environ.get("MAMBASPIKE_DATA"):
        return Path(os.environ["MAMBASPIKE_DATA"]).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "mambaspike"


DEFAULT_DATA_DIR = _default_data_dir()


@dataclass(frozen=True)
class DataInfo:
    """What the model and trainer need to know about a data set as binned."""

    name: str  # registry name, "ndigits" / "nmnist"
    input_shape: tuple  # (C, H, W) of one time bin, e.g. (2, 34, 34)
    num_classes: int
    class_names: tuple[str, ...]
    time_window_us: int  # events at t >= time_window_us are dropped
    dt_us: int  # bin width
    T: int  # number of time bins, ceil(time_window_us / dt_us)
    root: str  # folder the events were read from


def _locate_nmnist(data_dir: Path) -> Path:
    for root in (data_dir / "NMNIST", data_dir):
        if (root / "Train").is_dir() and (root / "Test").is_dir():
            return root
    raise DatasetError(
        f"N-MNIST not found in {data_dir}: expected {LAYOUT} with ROOT = {data_dir / 'NMNIST'} "
        f"(or {data_dir} itself); get N-MNIST from {NMNIST_URL}"
    )


@dataclass(frozen=True)
class _Spec:
    locate: Callable[[Path], Path]  # data_dir -> folder in the N-MNIST layout
    time_window_us: int
    dt_us: int


_DIGIT_NAMES = tuple(str(d) for d in range(10))
_REGISTRY = {
    "ndigits": _Spec(ensure_ndigits, time_window_us=300_000, dt_us=10_000),
    "nmnist": _Spec(_locate_nmnist, time_window_us=300_000, dt_us=10_000),
}


# Static-image data sets: name -> get_datasets-like loader (no binning; see each module).
_STATIC = {"digits": get_digits}


def dataset_names() -> list[str]:
    """Names accepted by :func:`get_datasets`; the first is the default."""
    return list(_REGISTRY) + list(_STATIC)


def _spec(name: str) -> _Spec:
    if name not in _REGISTRY:
        raise DatasetError(f"unknown data set {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def dataset_defaults(name: str) -> dict:
    """Default binning of a data set: ``{"time_window_us": ..., "dt_us": ...}`` (``None`` for static images)."""
    if name in _STATIC:
        return {"time_window_us": None, "dt_us": None}
    spec = _spec(name)
    return {"time_window_us": spec.time_window_us, "dt_us": spec.dt_us}


class FrameDataset(Dataset):
    """Some samples of one split, served from the split's frame cache.

    ``dataset[i]`` is ``(frames, label)``: float32 ``[T, C, H, W]`` event counts and an int.
    ``.targets`` holds the labels of these samples (int64 ``[len(dataset)]``), ``.indices`` their
    positions in the split's file list. The cache is memory-mapped on first access (also after
    pickling into a DataLoader worker).
    """

    def __init__(self, frames_path: Path, targets: np.ndarray, indices: np.ndarray):
        self.frames_path = Path(frames_path)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = np.asarray(targets, dtype=np.int64)[self.indices]
        self._frames = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._frames is None:
            self._frames = np.load(self.frames_path, mmap_mode="r")  # [N, T, C, H, W] uint8
        frames = np.array(self._frames[self.indices[i]])  # [T, C, H, W] uint8, copied out of the map
        return torch.from_numpy(frames).float(), int(self.targets[i])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_frames": None}


def collate_time_first(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(frames [T, C, H, W], label)`` pairs into float32 ``[T, B, C, H, W]`` and int64 ``[B]``."""
    frames = torch.stack([f for f, _ in batch], dim=1)
    labels = torch.tensor([label for _, label in batch], dtype=torch.int64)
    return frames, labels


def stratified_subset(targets: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` positions into ``targets``, classes as balanced as possible, chosen by ``seed``.

    Each class is shuffled; then the classes are dealt round-robin. Returns sorted positions.
    """
    rng = np.random.default_rng(seed)
    rank = np.empty(len(targets), dtype=np.int64)  # position of each sample in its class's shuffle
    for c in np.unique(targets):
        members = np.flatnonzero(targets == c)
        rank[rng.permutation(members)] = np.arange(len(members))
    return np.sort(np.lexsort((targets, rank))[:n])


def _check_int(value, option: str, expected: str, ok: Callable[[int], bool]) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or not ok(value):
        raise DatasetError(f"{option} must be {expected}, got {value!r}")


def get_datasets(
    name: str,
    data_dir: str | Path | None = None,
    *,
    time_window_us: int | None = None,
    dt_us: int | None = None,
    subset: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
) -> tuple[FrameDataset, FrameDataset, FrameDataset, DataInfo]:
    """Train, validation and test sets of a registered data set, binned into frames.

    Args:
        name: one of :func:`dataset_names`.
        data_dir: where data sets live (default ``DEFAULT_DATA_DIR``); frames are cached in
            ``data_dir/cache``.
        time_window_us: length of each sample in µs (default per data set); later events are dropped.
        dt_us: bin width in µs (default per data set), ``<= time_window_us``.
        subset: at most this many samples per split, class-balanced, chosen by ``seed`` (smoke runs).
        seed: chooses the validation hold-out and the subset (not the data).
        val_fraction: share of the data set's train split held out, stratified, for validation.

    Returns:
        ``(train, val, test, info)``; samples are ``(float32 [T, C, H, W], int label)``.
    """
    if name in _STATIC:
        return _STATIC[name](data_dir, time_window_us=time_window_us, dt_us=dt_us, subset=subset, seed=seed,
                             val_fraction=val_fraction)  # fmt: skip
    spec = _spec(name)
    time_window_us = spec.time_window_us if time_window_us is None else time_window_us
    dt_us = spec.dt_us if dt_us is None else dt_us
    _check_int(time_window_us, "--time-window", "a positive integer number of µs", lambda v: v > 0)
    _check_int(dt_us, "--dt", f"a positive integer number of µs, at most --time-window ({time_window_us} µs)",
               lambda v: 0 < v <= time_window_us)
    if subset is not None:
        _check_int(subset, "--subset", "a positive integer number of samples per split", lambda v: v > 0)
    if not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")

    data_dir = Path(data_dir).expanduser() if data_dir is not None else DEFAULT_DATA_DIR
    root = spec.locate(data_dir)
    train_folder, test_folder = NMNISTFolder(root, train=True), NMNISTFolder(root, train=False)
    train_cache, test_cache = (
        cached_frames(name, folder, data_dir / "cache", time_window_us, dt_us)
        for folder in (train_folder, test_folder)
    )

    try:
        train_idx, val_idx = train_test_split(
            np.arange(len(train_folder)), test_size=val_fraction, stratify=train_folder.targets, random_state=seed
        )
    except ValueError as err:
        raise DatasetError(f"val_fraction={val_fraction} cannot hold out a stratified validation set: {err}") from err
    splits = [
        (train_cache, train_folder.targets, np.sort(train_idx)),
        (train_cache, train_folder.targets, np.sort(val_idx)),
        (test_cache, test_folder.targets, np.arange(len(test_folder))),
    ]
    if subset is not None:
        splits = [(path, targets, idx[stratified_subset(targets[idx], subset, seed)]) for path, targets, idx in splits]
    train, val, test = (FrameDataset(*split) for split in splits)

    width, height, n_pol = train_folder.sensor_size
    info = DataInfo(
        name=name,
        input_shape=(n_pol, height, width),
        num_classes=len(_DIGIT_NAMES),
        class_names=_DIGIT_NAMES,
        time_window_us=int(time_window_us),
        dt_us=int(dt_us),
        T=num_bins(time_window_us, dt_us),
        root=str(root),
    )
    return train, val, test, info
