"""Event binning into frames, and an on-disk cache of a whole split's frames.

Frames are uint8 counts ``[T, P, H, W]`` per sample: ``T = ceil(time_window_us / dt_us)`` time bins of
``dt_us`` µs starting at t = 0, channel 0 = OFF events (p = 0), channel 1 = ON events (p = 1).
One-dimensional sensors (sensor size ``(F, 1, 1)``: SHD's 700 cochlea channels, N-TIDIGITS' 64) are
binned into ``[T, F]`` counts instead.
A split is cached once as one ``.npy`` array ``[N, T, ...]`` and read back memory-mapped.

A split ("source") is anything with ``len()``, ``source[i] -> (events, label)``, ``sensor_size``
and either ``identity() -> dict`` (what identifies its data, for the cache key) or the
``root``/``train``/``files`` of :class:`~mambaspike.data.nmnist.NMNISTFolder`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

FRAMES_FORMAT_VERSION = 1  # bump when the binning below changes, to invalidate old caches


def num_bins(time_window_us: int, dt_us: int) -> int:
    """Number of time bins ``T = ceil(time_window_us / dt_us)``."""
    return -(-time_window_us // dt_us)


def events_to_frames(
    events: np.ndarray, sensor_size: tuple[int, int, int], time_window_us: int, dt_us: int
) -> np.ndarray:
    """Count events per (time bin, polarity, y, x).

    Args:
        events: structured array with fields x, y, t (µs), p (0 = OFF, 1 = ON); any order.
        sensor_size: ``(W, H, P)`` in tonic's (x, y, p) convention, e.g. ``(34, 34, 2)``.
        time_window_us: events with ``t >= time_window_us`` (or ``t < 0``) are dropped.
        dt_us: bin width; bin ``k`` holds ``k * dt_us <= t < (k + 1) * dt_us``.

    Returns:
        uint8 ``[T, P, H, W]`` counts clipped at 255, ``T = ceil(time_window_us / dt_us)``.
    """
    width, height, n_pol = sensor_size
    n_bins = num_bins(time_window_us, dt_us)
    t = np.asarray(events["t"], dtype=np.int64)
    keep = (t >= 0) & (t < time_window_us)
    x, y, p = (np.asarray(events[name][keep], dtype=np.int64) for name in ("x", "y", "p"))
    if not ((x >= 0) & (x < width) & (y >= 0) & (y < height) & (p >= 0) & (p < n_pol)).all():
        raise ValueError(f"events outside the sensor size (W, H, P) = {sensor_size}")
    flat = (((t[keep] // dt_us) * n_pol + p) * height + y) * width + x
    counts = np.bincount(flat, minlength=n_bins * n_pol * height * width)
    return np.minimum(counts, 255).astype(np.uint8).reshape(n_bins, n_pol, height, width)


def is_one_dimensional(sensor_size: tuple[int, int, int]) -> bool:
    """A sensor ``(F, 1, 1)`` (one row of channels, one polarity) is binned to ``[T, F]``."""
    return sensor_size[1] == 1 and sensor_size[2] == 1


def events_to_counts(events: np.ndarray, num_channels: int, time_window_us: int, dt_us: int) -> np.ndarray:
    """Count events per (time bin, channel) for a one-dimensional sensor.

    Args:
        events: structured array with fields x (channel, ``0 <= x < num_channels``) and t (µs).
        num_channels: ``F``.
        time_window_us, dt_us: as in :func:`events_to_frames`.

    Returns:
        uint8 ``[T, F]`` counts clipped at 255.
    """
    n_bins = num_bins(time_window_us, dt_us)
    t = np.asarray(events["t"], dtype=np.int64)
    keep = (t >= 0) & (t < time_window_us)
    x = np.asarray(events["x"][keep], dtype=np.int64)
    if not ((x >= 0) & (x < num_channels)).all():
        raise ValueError(f"events outside the {num_channels} channels")
    counts = np.bincount((t[keep] // dt_us) * num_channels + x, minlength=n_bins * num_channels)
    return np.minimum(counts, 255).astype(np.uint8).reshape(n_bins, num_channels)


def bin_events(events: np.ndarray, sensor_size: tuple[int, int, int], time_window_us: int, dt_us: int) -> np.ndarray:
    """``[T, F]`` counts for a one-dimensional sensor, else ``[T, P, H, W]`` frames."""
    if is_one_dimensional(sensor_size):
        return events_to_counts(events, sensor_size[0], time_window_us, dt_us)
    return events_to_frames(events, sensor_size, time_window_us, dt_us)


def binned_shape(sensor_size: tuple[int, int, int], time_window_us: int, dt_us: int) -> tuple[int, ...]:
    """Shape of one binned sample: ``(T, F)`` or ``(T, P, H, W)``."""
    width, height, n_pol = sensor_size
    if is_one_dimensional(sensor_size):
        return (num_bins(time_window_us, dt_us), width)
    return (num_bins(time_window_us, dt_us), n_pol, height, width)


def _folder_identity(dataset) -> dict:
    """What identifies a split's data: its folder, its file list and the generator's meta.json
    (or the source's own ``identity()``)."""
    if hasattr(dataset, "identity"):
        return dataset.identity()
    file_list = "\n".join(str(f.relative_to(dataset.root)) for f in dataset.files)
    identity = {
        "folder": str(dataset.root.resolve()),
        "split": "train" if dataset.train else "test",
        "n_files": len(dataset.files),
        "files_sha256": hashlib.sha256(file_list.encode()).hexdigest(),
    }
    meta_path = dataset.root / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        identity["generator"] = {key: meta.get(key) for key in ("name", "generator_version", "seed")}
    return identity


def frame_cache_path(name: str, dataset, cache_dir: Path, time_window_us: int, dt_us: int) -> Path:
    """Cache file for a split's frames: the name hashes the data set's identity and every binning
    parameter, so a change of either gives a new file."""
    key = {
        "format": FRAMES_FORMAT_VERSION,
        "name": name,
        "data": _folder_identity(dataset),
        "sensor_size": list(dataset.sensor_size),
        "time_window_us": int(time_window_us),
        "dt_us": int(dt_us),
        "T": num_bins(time_window_us, dt_us),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    split = key["data"].get("split", "all")
    return Path(cache_dir) / f"{name}-{split}-T{key['T']}-dt{dt_us}us-{digest}.npy"


def cached_frames(name: str, dataset, cache_dir: str | Path, time_window_us: int, dt_us: int) -> Path:
    """Convert a whole split to frames once and return the cache file's path.

    The file holds uint8 ``[N, T, P, H, W]`` (``[N, T, F]`` for one-dimensional sensors) (sample order =
    ``dataset.files``); open it with
    ``np.load(path, mmap_mode="r")``. It is written to a temporary file and moved into place with
    ``os.replace``, so readers never see a partial file.
    """
    path = frame_cache_path(name, dataset, Path(cache_dir), time_window_us, dt_us)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (len(dataset), *binned_shape(dataset.sensor_size, time_window_us, dt_us))
    tmp = path.with_name(f".{path.stem}-{uuid.uuid4().hex}.tmp.npy")
    try:
        frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        for i in range(len(dataset)):
            frames[i] = bin_events(dataset[i][0], dataset.sensor_size, time_window_us, dt_us)
        frames.flush()
        del frames
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
