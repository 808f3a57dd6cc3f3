"""``digits``: scikit-learn's 1,797 handwritten 8x8 digits as static images (no download, offline).

A sample is ``(float32 [1, 1, 8, 8], label)``: one time step (T = 1), one channel, intensities in
[0, 1] (the 0..16 grey levels divided by 16). Models that need spikes encode them over their own
time steps (e.g. the Spiking Mamba model's rate coding); :func:`~mambaspike.data.collate_time_first`
batches samples to ``[1, B, 1, 8, 8]``.

Splits: a stratified 75 / 25 train/test split fixed once (``random_state=0``, independent of the
run's seed), then ``val_fraction`` of train held out, stratified, chosen by ``seed`` (as
:func:`mambaspike.data.get_datasets` does for the event data sets).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from torch.utils.data import Dataset

from mambaspike.data.errors import DatasetError

NAME = "digits"
TEST_FRACTION = 0.25
SPLIT_SEED = 0
INPUT_SHAPE = (1, 8, 8)
STEP_US = 1000  # nominal length of the single time step (a static image has no time axis)


class StaticImageDataset(Dataset):
    """Images ``float32 [N, C, H, W]`` and labels; items are ``(image [1, C, H, W], label)`` (T = 1).
    ``.targets`` holds the labels (int64 ``[N]``)."""

    def __init__(self, images: np.ndarray, targets: np.ndarray):
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        self.targets = np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i].unsqueeze(0), int(self.targets[i])


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: images ``float32 [N, 1, 8, 8]`` in [0, 1] and labels ``int64 [N]``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images[:, None] / 16.0).astype(np.float32), d.target.astype(np.int64)


def get_digits(
    data_dir=None,
    *,
    time_window_us: int | None = None,
    dt_us: int | None = None,
    subset: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
):
    """``(train, val, test, info)`` of the digits images (``data_dir`` is not used: nothing is read
    from disk). ``--time-window`` / ``--dt`` do not apply to static images and are refused, except
    for the nominal single step (``STEP_US``) that ``info`` reports and a saved run repeats."""
    from sklearn.model_selection import train_test_split

    from mambaspike.data import DataInfo, stratified_subset

    for option, value in (("--time-window", time_window_us), ("--dt", dt_us)):
        if value is not None and value != STEP_US:
            raise DatasetError(f"{option} does not apply to '{NAME}' (static images, one time step); leave it out")
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, Integral) or subset <= 0):
        raise DatasetError(f"--subset must be a positive integer number of samples per split, got {subset!r}")
    if not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")

    images, labels = load_digits_images()
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(idx, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED)
    train_idx, val_idx = train_test_split(
        train_idx, test_size=val_fraction, stratify=labels[train_idx], random_state=seed
    )
    splits = [np.sort(train_idx), np.sort(val_idx), np.sort(test_idx)]
    if subset is not None:
        splits = [s[stratified_subset(labels[s], subset, seed)] for s in splits]
    train, val, test = (StaticImageDataset(images[s], labels[s]) for s in splits)
    info = DataInfo(
        name=NAME,
        input_shape=INPUT_SHAPE,
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        time_window_us=STEP_US,
        dt_us=STEP_US,
        T=1,
        root="sklearn.datasets.load_digits",
    )
    return train, val, test, info
