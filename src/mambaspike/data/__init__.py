"""Data sets -> train/val/test torch ``Dataset``s, time-first samples for every model.

Each data set is a :class:`~mambaspike.data.registry.DatasetEntry` in its own module (``registry.py``
lists them; ``mambaspike datasets`` prints them with their expected layouts). A sample is
``(x, label)`` with float32 ``x``:

- event data (``ndigits`` default, ``nmnist``, ``dvsgesture``, ``cifar10dvs``): ``[T, P, H, W]`` event
  counts per ``dt_us`` bin (P = polarity, 0 = OFF, 1 = ON), ``input_shape = (P, H, W)``;
- one-dimensional event data (``shd``, ``ntidigits``): ``[T, F]`` spike counts, ``input_shape = (F,)``;
- sequences (``smnist``, ``psmnist``): ``[784, 1]``; static images (``mnist``, ``cifar10``, ``digits``,
  ``cifar100``): ``[1, C, H, W]`` (T = 1; spiking models encode them over time themselves).

Event data are binned once and cached on disk under ``DATA_DIR/cache/`` (``frames.py``; the cache key
holds every binning parameter) and served memory-mapped. :func:`collate_time_first` batches samples
time-first ``[T, B, ...]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mambaspike.data.arrays import ArrayDataset
from mambaspike.data.augment import augment_frames, check_augment_set, train_augment
from mambaspike.data.errors import DatasetError, DatasetMissing
from mambaspike.data.frames import cached_frames, is_one_dimensional, num_bins
from mambaspike.data.registry import Augment, DatasetEntry, dataset_names, get_entry, register

__all__ = [
    "DEFAULT_DATA_DIR",
    "DataInfo",
    "DatasetEntry",
    "DatasetError",
    "register",
    "FrameDataset",
    "collate_time_first",
    "dataset_defaults",
    "dataset_names",
    "dataset_status",
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

    name: str  # registry name, e.g. "ndigits"
    input_shape: tuple  # one time step: (C, H, W), e.g. (2, 34, 34), or (F,), e.g. (700,)
    num_classes: int
    class_names: tuple[str, ...]
    time_window_us: int  # events at t >= time_window_us are dropped
    dt_us: int  # bin width
    T: int  # number of time bins, ceil(time_window_us / dt_us)
    root: str  # folder the events were read from


def dataset_defaults(name: str) -> dict:
    """Default binning of a data set: ``{"time_window_us": ..., "dt_us": ...}``."""
    entry = get_entry(name)
    return {"time_window_us": entry.time_window_us, "dt_us": entry.dt_us}


class FrameDataset(Dataset):
    """Some samples of one split, served from the split's frame cache.

    ``dataset[i]`` is ``(frames, label)``: float32 ``[T, C, H, W]`` (or ``[T, F]``) event counts and an int.
    ``.targets`` holds the labels of these samples (int64 ``[len(dataset)]``), ``.indices`` their
    positions in the split's file list. The cache is memory-mapped on first access (also after
    pickling into a DataLoader worker). ``augment`` (train split only) is applied to every sample served,
    with random numbers that are a function of ``(seed, epoch, i)`` only (:meth:`set_epoch`): the same
    augmentation whichever process serves the sample and however often the run was resumed.
    """

    def __init__(
        self,
        frames_path: Path,
        targets: np.ndarray,
        indices: np.ndarray,
        augment: Augment | None = None,
        seed: int = 0,
    ):
        self.frames_path = Path(frames_path)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = np.asarray(targets, dtype=np.int64)[self.indices]
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self._frames = None

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose augmentation :meth:`__getitem__` draws (like ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._frames is None:
            self._frames = np.load(self.frames_path, mmap_mode="r")  # [N, T, C, H, W] uint8
        frames = np.array(self._frames[self.indices[i]])  # [T, C, H, W] uint8, copied out of the map
        x = torch.from_numpy(frames).float()
        if self.augment is not None:
            g = torch.Generator().manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_000_033 + int(i)) % 2**63)
            x = augment_frames(x, self.augment, generator=g)
        return x, int(self.targets[i])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_frames": None}


def collate_time_first(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(x [T, ...], label)`` pairs into float32 ``[T, B, ...]`` and int64 ``[B]``."""
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
    augment: bool = False,
    augment_events: bool = False,
    download: bool = False,
    augment_set: dict | None = None,
) -> tuple[Dataset, Dataset, Dataset, DataInfo]:
    """Train, validation and test sets of a registered data set.

    Args:
        name: one of :func:`dataset_names`.
        data_dir: where data sets live (default ``DEFAULT_DATA_DIR``); event frames are cached in
            ``data_dir/cache``.
        time_window_us: length of each sample in µs (default per data set); later events are dropped.
        dt_us: bin width in µs (default per data set), ``<= time_window_us``.
        subset: at most this many samples per split, class-balanced, chosen by ``seed`` (smoke runs).
        seed: chooses the validation hold-out and the subset (not the data).
        val_fraction: share of the data set's train split held out, stratified, for validation.
        augment: apply the data set's augmentation (``DatasetEntry.augment``) to the train split.
        augment_events: also perturb the train split's events as the robustness study does, at levels
            drawn per sample (``data.augment.EVENT_AUGMENT``); event data sets only.
        download: let tonic fetch the data set if it is missing (where tonic can).
        augment_set: fields of the data set's augmentation to replace where ``augment`` (``Augment``
            fields, checked by ``data.augment.check_augment_set``), e.g. ``{"jitter_px": 1.0}``.

    Returns:
        ``(train, val, test, info)``; samples are ``(float32 [T, *info.input_shape], int label)``.
    """
    entry = get_entry(name)
    if entry.fixed_binning and (time_window_us, dt_us) not in (
        (None, None),
        (entry.time_window_us, entry.dt_us),
        (entry.time_window_us, None),
        (None, entry.dt_us),
    ):
        raise DatasetError(
            f"--time-window/--dt do not apply to {name}: its sample length is fixed "
            f"(T = {num_bins(entry.time_window_us, entry.dt_us)})"
        )
    time_window_us = entry.time_window_us if time_window_us is None else time_window_us
    dt_us = entry.dt_us if dt_us is None else dt_us
    _check_int(time_window_us, "--time-window", "a positive integer number of µs", lambda v: v > 0)
    _check_int(
        dt_us,
        "--dt",
        f"a positive integer number of µs, at most --time-window ({time_window_us} µs)",
        lambda v: 0 < v <= time_window_us,
    )
    if subset is not None:
        _check_int(subset, "--subset", "a positive integer number of samples per split", lambda v: v > 0)
    if not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")

    if augment_events and entry.kind != "events":
        raise DatasetError(f"augment_events (--augment-events): {name} is not an event data set")
    data_dir = Path(data_dir).expanduser() if data_dir is not None else DEFAULT_DATA_DIR
    train_source, test_source = entry.open(data_dir, download)
    T = num_bins(time_window_us, dt_us)

    from sklearn.model_selection import train_test_split  # here, not at the top: sklearn slows the CLI's start-up

    try:
        train_idx, val_idx = train_test_split(
            np.arange(len(train_source)), test_size=val_fraction, stratify=train_source.targets, random_state=seed
        )
    except ValueError as err:
        raise DatasetError(f"val_fraction={val_fraction} cannot hold out a stratified validation set: {err}") from err
    split_idx = [np.sort(train_idx), np.sort(val_idx), np.arange(len(test_source))]
    sources = [train_source, train_source, test_source]
    if subset is not None:
        split_idx = [idx[stratified_subset(src.targets[idx], subset, seed)] for src, idx in zip(sources, split_idx)]

    if entry.kind == "events":
        cache = {
            id(src): cached_frames(name, src, data_dir / "cache", time_window_us, dt_us)
            for src in (train_source, test_source)
        }
        aug = train_augment(entry.augment, augment, augment_events, check_augment_set(augment_set or {}))
        train, val, test = (
            FrameDataset(cache[id(src)], src.targets, idx, aug if k == 0 else None, seed=seed)
            for k, (src, idx) in enumerate(zip(sources, split_idx))
        )
        width, height, n_pol = train_source.sensor_size
        input_shape = (width,) if is_one_dimensional(train_source.sensor_size) else (n_pol, height, width)
    else:
        train, val, test = (ArrayDataset(src, idx, entry.to_sample, T) for src, idx in zip(sources, split_idx))
        T, *input_shape = entry.to_sample(train_source.data[0], 0, T).shape  # e.g. [784, 1], [1, 3, 32, 32]

    info = DataInfo(
        name=name,
        input_shape=tuple(int(v) for v in input_shape),
        num_classes=len(entry.class_names),
        class_names=tuple(entry.class_names),
        time_window_us=int(time_window_us),
        dt_us=int(dt_us),
        T=int(T),
        root=str(getattr(train_source, "root", data_dir)),
    )
    return train, val, test, info


def dataset_status(data_dir: str | Path) -> list[dict]:
    """For ``mambaspike datasets``: per data set its name, summary, layout, source and whether it is
    present under ``data_dir`` (``status``: "present: N train, M test samples", "missing", or an error)."""
    data_dir = Path(data_dir).expanduser()
    rows = []
    for name in dataset_names():
        entry = get_entry(name)
        if entry.generated and entry.folder and not (data_dir / entry.folder / "meta.json").is_file():
            # never generate just to list
            status = "not generated yet (made on first use)"
        else:
            try:
                train, test = entry.open(data_dir, False)
                status = f"present: {len(train)} train, {len(test)} test samples"
            except DatasetMissing:
                status = "missing"
            except DatasetError as err:
                status = f"error: {err}"
        rows.append(
            {
                "name": name,
                "status": status,
                "summary": entry.summary,
                "layout": entry.layout,
                "source": entry.source,
                "kind": entry.kind,
            }
        )
    return rows
