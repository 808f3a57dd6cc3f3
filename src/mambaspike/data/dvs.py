"""The simulated DVS pixel, shared by the generated event data sets (N-Digits, DVS-Motion).

Each pixel compares its log intensity with a stored reference level; a change of at least its ON
(OFF) contrast threshold emits ON (OFF) events, one per threshold crossed, timestamped by linear
interpolation within the time step, and moves the reference by as many thresholds. Thresholds differ
per pixel (drawn once per camera). After firing, a pixel ignores changes for a refractory period;
what accumulates meanwhile fires when it is free again. Timestamps get Gaussian jitter, and
background-activity noise events (uniform in pixel, time and polarity) are added.

Everything here is NumPy on flat pixel arrays ``[M]`` (any set of pixels of any number of samples),
so a caller chooses what one step simulates; :mod:`mambaspike.kernels.dvs_numba` is the compiled
form of :func:`dvs_step` for DVS-Motion's scenes.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from mambaspike.data.errors import DatasetError


def camera_thresholds(
    rng: np.random.Generator, n_pixels: int, mean: float, std: float, minimum: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ON and OFF contrast thresholds (log-intensity units), each ``[n_pixels]``.

    Drawn as one normal ``[2, n_pixels]`` array (row 0 ON, row 1 OFF), floored at ``minimum``.
    """
    c = rng.normal(mean, std, size=(2, n_pixels))
    c = np.maximum(c, minimum)
    return c[0], c[1]


def initial_reference(level0: np.ndarray, u: np.ndarray, c_on: np.ndarray, c_off: np.ndarray) -> np.ndarray:
    """Reference levels that put each pixel at fraction ``u`` in [0, 1) between its OFF and ON
    thresholds: ``level0 - ref`` lies in ``[-c_off, c_on)``."""
    return level0 - (u * (c_on + c_off) - c_off)


def dvs_step(
    level0: np.ndarray,
    level1: np.ndarray,
    ref: np.ndarray,
    t_free: np.ndarray,
    c_on: np.ndarray,
    c_off: np.ndarray,
    t0: float,
    step_us: float,
    refractory_us: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One time step ``[t0, t0 + step_us]`` of DVS pixels whose log intensity goes from ``level0`` to
    ``level1`` (linearly in between).

    All arrays are flat ``[M]`` float64; ``ref`` (reference levels) and ``t_free`` (time in µs from
    which each pixel may fire again) are updated in place. Returns ``None`` when no pixel fires, else
    per event ``(position in [M], t in µs, on)``, events of a pixel in crossing order.
    """
    t1 = t0 + step_us
    change = level1 - ref
    fire = (change >= c_on) | (change <= -c_off)
    fire &= t_free <= t1
    idx = np.flatnonzero(fire)
    if not idx.size:
        return None
    d = change[idx]
    on = d > 0
    c = np.where(on, c_on[idx], c_off[idx])
    count = np.floor(np.abs(d) / c).astype(np.int64)  # thresholds crossed, >= 1
    step_sign = np.where(on, c, -c)
    l0, l1, r = level0[idx], level1[idx], ref[idx]
    # Event j (1..count) of a pixel is where the level crossed r + j * step_sign, linearly
    # interpolated between the step's ends, and not before the pixel is free.
    owner = np.repeat(np.arange(idx.size), count)
    j = np.arange(owner.size) - np.repeat(np.cumsum(count) - count, count) + 1
    slope = (l1 - l0)[owner]
    crossing = r[owner] + j * step_sign[owner] - l0[owner]
    frac = np.clip(np.divide(crossing, slope, out=np.zeros_like(slope), where=slope != 0), 0.0, 1.0)
    t = np.maximum(t0 + frac * step_us, t_free[idx][owner])
    ref[idx] = r + count * step_sign
    t_free[idx] = t[np.cumsum(count) - 1] + refractory_us
    return idx[owner], t, on[owner]


def jitter_and_noise(
    pixel: np.ndarray,
    t: np.ndarray,
    on: np.ndarray,
    rng: np.random.Generator,
    n_pixels: int,
    duration_us: float,
    jitter_us: float,
    noise_hz: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian timestamp jitter on the events, plus background-activity noise.

    ``noise_hz`` is the rate per pixel (either polarity) over ``[0, duration_us)``. Returns
    ``(pixel, t µs float, on)`` with the noise events appended (unsorted, t not clipped). Random
    numbers are drawn in a fixed order: jitter, noise count, pixels, times, polarities.
    """
    t = t + rng.normal(0.0, jitter_us, size=t.size)
    n_noise = rng.poisson(noise_hz * n_pixels * duration_us * 1e-6)
    pixel = np.concatenate([pixel, rng.integers(0, n_pixels, n_noise)])
    t = np.concatenate([t, rng.uniform(0, duration_us, n_noise)])
    on = np.concatenate([on, rng.integers(0, 2, n_noise).astype(bool)])
    return pixel, t, on


# ---- writing a generated data set once -----------------------------------------------------------


def generate_once(root: str | Path, folder_name: str, what: str, generate) -> Path:
    """``root/folder_name``, written first by ``generate(tmp_folder)`` if it is missing: into a
    temporary folder beside the target, renamed into place, so an interrupted run or two concurrent
    runs never leave a half-written data set (a concurrent run finishing first is fine). ``what``
    names the data set in the error for an unwritable ``root``."""
    root = Path(root)
    target = root / folder_name
    if target.exists():
        return target
    tmp = root / f".{folder_name}-{uuid.uuid4().hex}.tmp"
    try:
        tmp.mkdir(parents=True)
    except OSError as err:
        raise DatasetError(f"cannot write {what} into {root} ({err}); choose a writable --data-dir") from err
    try:
        generate(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_meta(folder: Path) -> dict:
    """The ``meta.json`` of a generated data set folder."""
    meta_path = Path(folder) / "meta.json"
    if not meta_path.is_file():
        raise DatasetError(f"{folder} exists but has no meta.json, so it was not written by this generator; remove it")
    return json.loads(meta_path.read_text())
