"""``digits``: scikit-learn's 1,797 handwritten 8x8 digits as static images (no download, offline).

A sample is ``(float32 [1, 1, 8, 8], label)``: one time step (T = 1), one channel, intensities in
[0, 1] (the 0..16 grey levels divided by 16). Models that need spikes encode them over their own
time steps (e.g. the Spiking Mamba model's rate coding); :func:`~mambaspike.data.collate_time_first`
batches samples to ``[1, B, 1, 8, 8]``.

Splits: a stratified 75 / 25 train/test split fixed once (``random_state=0``, independent of the
run's seed); ``get_datasets`` then holds out a stratified validation set from train, chosen by the
run's seed, as for every data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mambaspike.data.arrays import ArraySource
from mambaspike.data.registry import DatasetEntry

NAME = "digits"
TEST_FRACTION = 0.25
SPLIT_SEED = 0
STEP_US = 1000  # nominal length of the single time step (a static image has no time axis)


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: images uint8 ``[N, 1, 8, 8]`` with grey levels 0..16 and labels int64 ``[N]``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images[:, None].astype(np.uint8), d.target.astype(np.int64)


def open_digits(data_dir: Path, download: bool = False) -> tuple[ArraySource, ArraySource]:
    """The fixed train/test split as array sources (``data_dir`` is not used: nothing is on disk)."""
    from sklearn.model_selection import train_test_split

    images, labels = load_digits_images()
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return (
        ArraySource(images[train_idx], labels[train_idx], "train"),
        ArraySource(images[test_idx], labels[test_idx], "test"),
    )


def digit_image(image: np.ndarray, seed: int, T: int) -> np.ndarray:
    """uint8 ``[1, 8, 8]`` grey levels 0..16 -> float32 ``[1, 1, 8, 8]`` in [0, 1]."""
    return (image.astype(np.float32) / 16.0)[None]


ENTRY = DatasetEntry(
    name=NAME,
    summary="scikit-learn's 8x8 handwritten digits as static images, [1, 1, 8, 8] (T = 1), 10 classes, "
    "1,347 train / 450 test (for the Spiking Mamba recipes; no download)",
    layout="nothing on disk: bundled with scikit-learn",
    source="sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)",
    open=open_digits,
    class_names=tuple(str(d) for d in range(10)),
    kind="arrays",
    time_window_us=STEP_US,
    dt_us=STEP_US,
    fixed_binning=True,
    generated=True,  # bundled with scikit-learn: never missing
    to_sample=digit_image,
)
