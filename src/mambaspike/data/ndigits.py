"""N-Digits: the embedded default data set, scikit-learn's handwritten digits seen by a simulated DVS.

Each of scikit-learn's 1,797 real 8x8 digits (``sklearn.datasets.load_digits``, bundled, offline) is
upscaled to 26x26 px, placed in a 34x34 sensor field and moved through the three saccades of N-MNIST
(Orchard et al. 2015; the triangle path of ``tonic.datasets.nmnist.stabilize``): (+3.5, +7) px in
0-100 ms, (+3.5, -7) px in 100-200 ms, (-7, 0) px in 200-300 ms, each with a raised-cosine velocity
profile (zero velocity at the saccade boundaries), so the events come in three bursts.

The DVS pixel model (:mod:`mambaspike.data.dvs`, shared with DVS-Motion) runs on a fine time grid
(``step_us``) over bilinearly rendered frames. Each pixel compares its log intensity ``log(I + eps)``
with a stored reference level; a change of at least its ON (OFF) contrast threshold emits ON (OFF)
events, one per threshold crossed, timestamped by linear interpolation within the step, and moves the
reference by as many thresholds. Thresholds differ per pixel (drawn once per camera from the seed).
After firing, a pixel ignores changes for a refractory period; what accumulates meanwhile fires when
it is free again. Timestamps get Gaussian jitter, and a few background-activity noise events are added.

The result is written as real N-MNIST ``.bin`` files in the N-MNIST layout
``ROOT/N-Digits/{Train,Test}/<digit>/<NNNNN>.bin`` (NNNNN = index in ``load_digits``) and read by the
same loader as N-MNIST (:class:`mambaspike.data.nmnist.NMNISTFolder`).

Random numbers come from per-purpose ``SeedSequence`` streams (camera; one per sample), so a
sample's events depend only on the seed and its index, not on batching or threads.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mambaspike.data.dvs import (
    camera_thresholds,
    dvs_step,
    generate_once,
    initial_reference,
    jitter_and_noise,
    read_meta,
)
from mambaspike.data.errors import DatasetError
from mambaspike.data.nmnist import EVENT_DTYPE, write_nmnist_file

GENERATOR_VERSION = "1"
FOLDER_NAME = "N-Digits"
TEST_FRACTION = 0.2
CHUNK_SAMPLES = 64  # samples simulated together; small enough that the state stays in cache


@dataclass(frozen=True)
class DVSParams:
    """Scene and camera parameters of the simulation (lengths in px, times in µs)."""

    sensor_px: int = 34  # square sensor field, N-MNIST's 34x34
    digit_px: int = 26  # side of the upscaled digit
    margin_px: int = 1  # digit's top-left corner in the field before the first saccade
    saccades_px: tuple[tuple[float, float], ...] = ((3.5, 7.0), (3.5, -7.0), (-7.0, 0.0))  # (dx, dy)
    saccade_us: int = 100_000  # duration of each saccade
    step_us: int = 500  # simulation time step
    background: float = 0.08  # screen intensity behind the digit (full ink = `ink`)
    ink: float = 0.2  # intensity of full ink (2.5x the background)
    log_eps: float = 1e-3  # the pixel sees log(I + log_eps)
    threshold_mean: float = 0.2  # contrast threshold, in log-intensity units, ON and OFF alike
    threshold_std: float = 0.03  # per-pixel mismatch (fixed per camera)
    threshold_min: float = 0.05  # floor on a drawn threshold
    refractory_us: float = 1_000.0
    jitter_us: float = 30.0  # standard deviation of the Gaussian timestamp jitter
    noise_hz: float = 0.05  # background-activity rate per pixel (either polarity)

    @property
    def duration_us(self) -> int:
        return self.saccade_us * len(self.saccades_px)


def digit_images(raw: np.ndarray, size: int = DVSParams.digit_px) -> np.ndarray:
    """Upscale scikit-learn digits ``[N, 8, 8]`` (values 0..16) to ``[N, size, size]`` in [0, 1].

    Cubic-spline zoom per image, clipped to [0, 1].
    """
    from scipy.ndimage import zoom  # here, not at the top: scipy and sklearn slow the CLI's start-up

    return np.stack([np.clip(zoom(img / 16.0, size / img.shape[0], order=3), 0.0, 1.0) for img in raw])


def saccade_offsets(t_us: np.ndarray, params: DVSParams = DVSParams()) -> tuple[np.ndarray, np.ndarray]:
    """Displacement ``(dx, dy)`` in px of the scene at times ``t_us`` (µs), relative to t = 0.

    Within each saccade the position follows ``u - sin(2 pi u) / (2 pi)`` of the move, u in [0, 1]:
    a raised-cosine velocity that is zero at both ends.
    """
    moves = np.asarray(params.saccades_px, dtype=np.float64)  # [S, 2]
    starts = np.cumsum(moves, axis=0) - moves  # [S, 2]
    t = np.asarray(t_us, dtype=np.float64)
    k = np.minimum(t // params.saccade_us, len(moves) - 1).astype(int)
    u = (t - k * params.saccade_us) / params.saccade_us
    pos = starts[k] + moves[k] * (u - np.sin(2 * np.pi * u) / (2 * np.pi))[..., None]
    return pos[..., 0], pos[..., 1]


def _camera_thresholds(seed: int, params: DVSParams) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ON and OFF contrast thresholds, each ``[H * W]``, fixed by the seed."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    return camera_thresholds(
        rng, params.sensor_px**2, params.threshold_mean, params.threshold_std, params.threshold_min
    )


def _sample_rng(seed: int, sample_id: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, int(sample_id))))


class _Renderer:
    """Bilinear rendering of a batch of digits shifted by a subpixel offset, in log intensity."""

    def __init__(self, images: np.ndarray, params: DVSParams):
        n, h, w = images.shape  # [N, h, w]
        s = params.sensor_px
        max_shift = np.abs(np.cumsum(params.saccades_px, axis=0)).max()  # the saccades are monotone
        self.pad = int(np.ceil(max_shift)) + 1
        self.size = s
        # Intensity of the field with the digit at rest, padded on all sides; log_eps folded in
        # (the bilinear weights sum to one).
        self.base = np.full((n, s + 2 * self.pad, s + 2 * self.pad), params.background + params.log_eps)
        r = self.pad + params.margin_px
        self.base[:, r : r + h, r : r + w] += (params.ink - params.background) * images

    def log_frame(self, dx: float, dy: float) -> np.ndarray:
        """``log(I + eps)`` of the field with the digit moved by (dx, dy) px: ``[N, H * W]``."""
        p, s = self.pad, self.size
        ix, iy = int(np.floor(dx)), int(np.floor(dy))
        fx, fy = dx - ix, dy - iy
        rows = self.base[:, p - iy - 1 : p - iy + s, :]  # [N, s + 1, padded width]
        x_interp = (1 - fx) * rows[:, :, p - ix : p - ix + s] + fx * rows[:, :, p - ix - 1 : p - ix - 1 + s]
        frame = (1 - fy) * x_interp[:, 1:] + fy * x_interp[:, :-1]  # [N, s, s]
        return np.log(frame.reshape(len(frame), -1), out=frame.reshape(len(frame), -1))


def _simulate_chunk(
    images: np.ndarray,
    rngs: list[np.random.Generator],
    thresholds: tuple[np.ndarray, np.ndarray],
    params: DVSParams,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run the DVS pixels over a batch of digits.

    Returns per sample ``(pixel, t_us, on)``: flat pixel index ``y * W + x``, float time in µs
    (before jitter), polarity as bool, in the order generated (by time step).
    """
    c_on, c_off = thresholds  # [P] each
    render = _Renderer(images, params)
    n_steps = params.duration_us // params.step_us
    dx, dy = saccade_offsets(np.arange(n_steps + 1) * params.step_us, params)

    level0 = render.log_frame(dx[0], dy[0]).reshape(-1)  # [N * P]
    n_pixels = level0.size // len(images)
    # Start each pixel at a random point between its OFF and ON thresholds.
    u = np.stack([rng.random(n_pixels) for rng in rngs]).reshape(-1)  # [N * P]
    c_on, c_off = np.tile(c_on, len(images)), np.tile(c_off, len(images))  # [N * P]
    ref = initial_reference(level0, u, c_on, c_off)
    t_free = np.full(level0.shape, -np.inf)  # time from which a pixel may fire again, µs
    records = []
    for k in range(1, n_steps + 1):
        level1 = render.log_frame(dx[k], dy[k]).reshape(-1)  # [N * P]
        fired = dvs_step(
            level0, level1, ref, t_free, c_on, c_off, (k - 1) * params.step_us, params.step_us, params.refractory_us
        )
        if fired is not None:
            idx, t, on = fired
            records.append((idx // n_pixels, idx % n_pixels, t, on))
        level0 = level1

    if records:
        sample, pixel, t, on = (np.concatenate(parts) for parts in zip(*records))
    else:
        sample, pixel, t, on = np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros(0, bool)
    order = np.argsort(sample, kind="stable")  # group by sample, keep time-step order
    bounds = np.searchsorted(sample[order], np.arange(len(images) + 1))
    return [(pixel[order[a:b]], t[order[a:b]], on[order[a:b]]) for a, b in zip(bounds[:-1], bounds[1:])]


def _finish_sample(
    pixel: np.ndarray, t: np.ndarray, on: np.ndarray, rng: np.random.Generator, params: DVSParams
) -> np.ndarray:
    """Add timestamp jitter and background noise; return sorted events with ``EVENT_DTYPE``."""
    s = params.sensor_px
    duration = params.duration_us
    pixel, t, on = jitter_and_noise(pixel, t, on, rng, s * s, duration, params.jitter_us, params.noise_hz)
    t = np.clip(np.floor(t), 0, duration - 1).astype(np.int64)
    order = np.argsort(t, kind="stable")
    events = np.empty(t.size, dtype=EVENT_DTYPE)
    events["x"] = pixel[order] % s
    events["y"] = pixel[order] // s
    events["t"] = t[order]
    events["p"] = on[order]
    return events


def simulate_dvs(
    images: np.ndarray,
    seed: int,
    *,
    sample_ids: np.ndarray | None = None,
    params: DVSParams = DVSParams(),
    workers: int | None = None,
) -> list[np.ndarray]:
    """Simulate the DVS camera watching each digit move through the three saccades.

    Args:
        images: ``[N, h, w]`` digit intensities in [0, 1] (``h, w <= digit_px``), e.g. from
            :func:`digit_images`.
        seed: camera seed (threshold mismatch) and base of each sample's random stream.
        sample_ids: ``[N]`` ids selecting each sample's random stream (default ``0..N-1``); a
            sample's events depend only on ``seed``, its image and its id.
        params: scene and camera parameters.
        workers: threads (default: CPU count); the result does not depend on it.

    Returns:
        N structured arrays with ``EVENT_DTYPE`` (x, y, t in µs, p with 1 = ON), sorted by t,
        ``0 <= t < params.duration_us``.
    """
    images = np.asarray(images, dtype=np.float64)
    path = np.cumsum(params.saccades_px, axis=0)  # [S, 2] positions at the saccade ends
    reach = params.margin_px + max(images.shape[1:], default=0) + max(path.max(), 0.0)
    if images.ndim != 3 or params.margin_px + min(path.min(), 0.0) < 0 or reach > params.sensor_px:
        raise ValueError(
            f"images must be [N, h, w] and stay inside the {params.sensor_px}x{params.sensor_px} field "
            f"along the saccades (h, w <= {params.digit_px} by default), got {images.shape}"
        )
    ids = np.arange(len(images)) if sample_ids is None else np.asarray(sample_ids)
    thresholds = _camera_thresholds(seed, params)
    rngs = [_sample_rng(seed, i) for i in ids]

    def run(start: int) -> list[np.ndarray]:
        stop = start + CHUNK_SAMPLES
        chunk_rngs = rngs[start:stop]
        raw = _simulate_chunk(images[start:stop], chunk_rngs, thresholds, params)
        return [_finish_sample(*ev, rng, params) for ev, rng in zip(raw, chunk_rngs)]

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        chunks = pool.map(run, range(0, len(images), CHUNK_SAMPLES))
        return [events for chunk in chunks for events in chunk]


README = """\
N-Digits: scikit-learn's 1,797 handwritten digits seen by a simulated DVS camera (mambaspike)
=============================================================================================

Each real 8x8 digit (sklearn.datasets.load_digits) is upscaled to 26x26 px, placed in a 34x34 sensor
field and moved through the three saccades of N-MNIST (Orchard et al. 2015): (+3.5, +7) px in
0-100 ms, (+3.5, -7) px in 100-200 ms, (-7, 0) px in 200-300 ms, each with a raised-cosine velocity
profile. A DVS pixel model (log-intensity change against per-pixel ON/OFF contrast thresholds,
refractory period, timestamp jitter, background noise) turns the motion into events.

Format: exactly N-MNIST's. One .bin file per sample, 5 bytes per event (x, y, polarity bit + 23-bit
timestamp in microseconds, big-endian), events sorted by time:
    Train/<digit>/<NNNNN>.bin, Test/<digit>/<NNNNN>.bin
NNNNN is the sample's index in load_digits. The train/test split is stratified (80/20).
meta.json holds the generator version, seed, every simulator parameter and the counts.
Regenerate by deleting this folder; the same seed gives byte-identical files.
"""


def _generate(folder: Path, seed: int, params: DVSParams) -> None:
    """Write the whole data set (files, README.txt, meta.json) into the empty ``folder``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    labels = digits.target
    ids = np.arange(len(labels))
    train_ids, test_ids = train_test_split(ids, test_size=TEST_FRACTION, stratify=labels, random_state=seed)
    split = np.where(np.isin(ids, train_ids), "Train", "Test")
    events = simulate_dvs(digit_images(digits.images), seed, params=params)
    for split_name in ("Train", "Test"):
        for digit in range(10):
            (folder / split_name / str(digit)).mkdir(parents=True)
    for i, ev in enumerate(events):
        write_nmnist_file(folder / split[i] / str(labels[i]) / f"{i:05d}.bin", ev)

    counts = np.array([len(ev) for ev in events])
    meta = {
        "name": FOLDER_NAME,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "source": "sklearn.datasets.load_digits",
        "sensor_size": [params.sensor_px, params.sensor_px, 2],
        "params": asdict(params),
        "counts": {
            "total": int(len(labels)),
            "train": int(len(train_ids)),
            "test": int(len(test_ids)),
            "train_per_class": np.bincount(labels[train_ids], minlength=10).tolist(),
            "test_per_class": np.bincount(labels[test_ids], minlength=10).tolist(),
        },
        "events_per_sample": {"mean": float(counts.mean()), "min": int(counts.min()), "max": int(counts.max())},
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (folder / "README.txt").write_text(README)


def ensure_ndigits(root: str | Path, seed: int = 0) -> Path:
    """Return ``root/N-Digits``, generating it first if it is missing.

    Generation writes into a temporary folder beside the target and renames it into place, so an
    interrupted run or two concurrent runs never leave a half-written data set. Raises
    ``DatasetError`` if the folder exists but was generated with another seed.
    """
    target = generate_once(root, FOLDER_NAME, "N-Digits", lambda tmp: _generate(tmp, seed, DVSParams()))
    found = read_meta(target).get("seed")
    if found != seed:
        raise DatasetError(
            f"{target} was generated with seed {found}, not the requested seed {seed}; "
            f"remove the folder to regenerate it, or use seed {found}"
        )
    return target


def _open_ndigits(data_dir: Path, download: bool):
    from mambaspike.data.nmnist import NMNISTFolder

    root = ensure_ndigits(data_dir)
    return NMNISTFolder(root, train=True), NMNISTFolder(root, train=False)


def _entry():
    from mambaspike.data.nmnist import LAYOUT
    from mambaspike.data.registry import Augment, DatasetEntry

    return DatasetEntry(
        name="ndigits",
        summary="N-Digits (embedded): sklearn's 1,797 digits moved through 3 saccades before a simulated "
        "DVS pixel, 34x34x2, 10 classes",
        layout=f"{LAYOUT} with ROOT = DATA_DIR/{FOLDER_NAME} (generated on first use, seconds)",
        source="generated offline by mambaspike (no download)",
        open=_open_ndigits,
        class_names=tuple(str(d) for d in range(10)),
        time_window_us=300_000,
        dt_us=10_000,
        augment=Augment(max_shift=2, flip_x=False, drop=0.1),  # as N-MNIST's; no flip: digits are not symmetric
        generated=True,
        folder=FOLDER_NAME,
    )


ENTRY = _entry()
