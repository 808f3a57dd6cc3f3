"""Data sets held in memory as arrays (MNIST, CIFAR, sequential MNIST): a source and a Dataset."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset


class ArraySource:
    """One split held in memory: ``data`` uint8 ``[N, ...]`` (e.g. images ``[N, C, H, W]``) and
    ``targets`` int64 ``[N]``."""

    def __init__(self, data: np.ndarray, targets: np.ndarray, split: str):
        self.data = data
        self.targets = np.asarray(targets, dtype=np.int64)
        self.split = split

    def __len__(self) -> int:
        return len(self.data)


class ArrayDataset(Dataset):
    """Some samples of an :class:`ArraySource`; ``dataset[i]`` is ``(to_sample(data[j], seed, T), label)``
    with float32 ``[T, ...]`` samples. ``seed`` is fixed per sample (position in the split), so
    stochastic encodings (rate coding) give the same sample every time."""

    def __init__(self, source: ArraySource, indices: np.ndarray, to_sample: Callable, T: int):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = source.targets[self.indices]
        self.to_sample = to_sample
        self.T = T

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.indices[i])
        seed = j + (0 if self.source.split == "train" else 1 << 24)
        return torch.from_numpy(self.to_sample(self.source.data[j], seed, self.T)), int(self.targets[i])
