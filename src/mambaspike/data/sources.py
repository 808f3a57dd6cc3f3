"""Small building blocks shared by the event loaders: a file-list source and tonic downloads."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mambaspike.data.errors import DatasetError


class FileListSource:
    """One split given as a list of sample files (or ``(file, part)`` keys) with labels.

    ``source[i]`` is ``(events, label)``: ``read(key)`` returns a structured array with fields
    x, y, t (µs, starting near 0), p. ``identity()`` names the files, for the frame-cache key.
    """

    def __init__(
        self,
        root: Path,
        split: str,
        keys: list,
        targets: list[int],
        sensor_size: tuple[int, int, int],
        read: Callable,
        params: dict | None = None,
    ):
        self.root = Path(root)
        self.params = params or {}  # conversion parameters that change the events (cache key)
        self.split = split
        self.keys = list(keys)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.sensor_size = sensor_size
        self._read = read

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self._read(self.keys[index]), int(self.targets[index])

    def identity(self) -> dict:
        listing = "\n".join(f"{k}:{t}" for k, t in zip(self.keys, self.targets.tolist()))
        return {
            "folder": str(self.root.resolve()),
            "split": self.split,
            "n_files": len(self.keys),
            "files_sha256": hashlib.sha256(listing.encode()).hexdigest(),
            **({"params": self.params} if self.params else {}),
        }


def file_identity(path: Path, split: str) -> dict:
    """Cache identity of a split stored in one file: its path, size and modification time."""
    stat = Path(path).stat()
    return {"file": str(Path(path).resolve()), "split": split, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def tonic_download(class_name: str, data_dir: Path, **kwargs) -> None:
    """Let tonic fetch a data set into ``data_dir`` (only behind ``--download``; never in tests)."""
    import tonic.datasets

    try:
        getattr(tonic.datasets, class_name)(save_to=str(data_dir), **kwargs)
    except Exception as err:  # network errors, checksum mismatches, ...
        raise DatasetError(f"--download of {class_name} into {data_dir} failed: {err}") from err


def event_array(x, y, t, p) -> np.ndarray:
    """Our event structured array: x, y (int16), t (int64 µs), p (int8: 0 = OFF, 1 = ON)."""
    events = np.empty(len(t), dtype=EVENTS)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


EVENTS = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
