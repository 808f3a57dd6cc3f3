"""DVS-Motion: an embedded event data set at DVS Gesture's shape in which only time order tells classes apart.

A sprite (one of scikit-learn's real 8x8 handwritten digits, upscaled, drawn at random from the
split's pool so that its appearance carries no label information) moves in front of a simulated
128x128 DVS (:mod:`mambaspike.data.dvs`'s pixel model) for 1.5 s. Ten classes in five time-reversed
pairs: clockwise / counter-clockwise circle, left-to-right / right-to-left, downward / upward and
diagonal down-right / up-left swipes, approaching / receding (growing / shrinking). A pair's second
class is exactly the time reversal of a path drawn from the first class's distribution (every path is
symmetric about the recording's midpoint: ``p(s) = m + v (s - 1/2)``, circles by angle), the sprite
fades in and out over the first and last 10 % (a symmetric contrast ramp), and the scene polarity
(bright sprite on a dark background or dark on bright: the log intensity is ``sigma * a * ink``,
``sigma = +-1``) is random per recording. Reversing time turns a pixel's rises into falls, which
swaps ON and OFF; flipping ``sigma`` swaps them back; so the time-summed ON and OFF frames of a class
and its twin have the same distribution, and only the order of the events separates them.

Variation: speed x U(0.7, 1.3) (the path's length; the duration is fixed), start phase and position,
sprite size and log contrast, and in some recordings a distractor sprite (a smaller digit) moving in
a random straight line. Recordings come in groups of one per class, one group per folder
``userNNN_camKK``; each camera (threshold mean and per-pixel mismatch, noise rate) records several
groups. Train and test use disjoint cameras and disjoint digit images.

Written once as DVS Gesture's tonic ``.npy`` layout, ``DATA_DIR/DVSMotion/ibmGestureTrain/
userNNN_camKK/<label>.npy`` and ``ibmGestureTest/...``, each an int16 ``[N, 4]`` array of
(x, y, p, t in whole ms), and read by the DVS Gesture loader. Lengths are given for the 128 px
sensor and scale with ``sensor_px``. Random numbers come from per-purpose ``SeedSequence`` streams
(camera, digit pools, one per recording), so a recording depends only on the seed and its index.
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

GENERATOR_VERSION = "1"
FOLDER_NAME = "DVSMotion"
CLASS_NAMES = (
    "clockwise circle",
    "counter-clockwise circle",
    "left-to-right swipe",
    "right-to-left swipe",
    "downward swipe",
    "upward swipe",
    "diagonal down-right",
    "diagonal up-left",
    "approaching",
    "receding",
)
FIRST_CAPACITY = 1 << 16  # events the kernel's buffers hold at first (grown where a recording needs more)
SPLIT_FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}


@dataclass(frozen=True)
class MotionParams:
    """Scene, camera and size parameters of DVS-Motion (lengths in px of a 128 px sensor, times in µs)."""

    sensor_px: int = 128
    duration_us: int = 1_500_000
    step_us: int = 2_000  # simulation time step
    n_cameras: int = 20
    test_cameras: int = 4  # the last cameras record the test split
    groups_per_camera: int = 10  # recording groups (folders, one recording per class) per camera
    test_digit_fraction: float = 0.2  # share of load_digits' images reserved for the test split
    sprite_px: int = 16  # side of the upscaled digit image the sprite is sampled from
    size_px: tuple[float, float] = (22.0, 34.0)  # sprite side on the sensor
    contrast: tuple[float, float] = (0.35, 0.7)  # log-intensity contrast of full ink
    speed: tuple[float, float] = (0.7, 1.3)  # factor on each path's length
    ramp: float = 0.1  # fade-in and fade-out, as a fraction of the duration
    circle_radius_px: tuple[float, float] = (26.0, 36.0)
    swipe_px: float = 110.0  # swipe length at speed 1
    zoom_ratio: float = 2.4  # size ratio end / start of an approach at speed 1
    distractor_prob: float = 0.3
    distractor_size_px: tuple[float, float] = (10.0, 16.0)
    distractor_speed_px_s: tuple[float, float] = (20.0, 60.0)
    threshold_mean: tuple[float, float] = (0.18, 0.24)  # per camera
    threshold_std: tuple[float, float] = (0.02, 0.05)  # per camera: per-pixel mismatch
    threshold_min: float = 0.05
    noise_hz: tuple[float, float] = (0.02, 0.2)  # per camera: background activity per pixel
    refractory_us: float = 1_000.0  # at most step_us
    jitter_us: float = 30.0

    @property
    def n_recordings(self) -> int:
        return self.n_cameras * self.groups_per_camera * len(CLASS_NAMES)


def check_params(params: MotionParams) -> None:
    """Raise ``ValueError`` naming the first field outside what the generator accepts."""
    checks = (
        ("sensor_px", params.sensor_px >= 16, "an integer >= 16"),
        ("step_us", 0 < params.step_us <= params.duration_us, "in (0, duration_us]"),
        ("duration_us", params.duration_us % params.step_us == 0, "a multiple of step_us"),
        ("n_cameras", params.n_cameras >= 2, "at least 2 (train and test cameras are disjoint)"),
        ("test_cameras", 0 < params.test_cameras < params.n_cameras, "in [1, n_cameras - 1]"),
        ("groups_per_camera", params.groups_per_camera >= 1, "at least 1"),
        ("test_digit_fraction", 0 < params.test_digit_fraction < 1, "in (0, 1)"),
        ("refractory_us", 0 <= params.refractory_us <= params.step_us, "in [0, step_us]"),
        ("distractor_prob", 0 <= params.distractor_prob <= 1, "in [0, 1]"),
        ("ramp", 0 < params.ramp < 0.5, "in (0, 0.5)"),
    )
    for name, ok, expected in checks:
        if not ok:
            raise ValueError(f"MotionParams.{name} = {getattr(params, name)!r}: expected {expected}")


# --- scene ---------------------------------------------------------------------------------------


def _ramp(s: np.ndarray, width: float) -> np.ndarray:
    """Raised-cosine fade-in over ``[0, width]`` and fade-out over ``[1 - width, 1]``: symmetric in s."""
    u = np.clip(np.minimum(s, 1 - s) / width, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def _main_path(label: int, s: np.ndarray, rng: np.random.Generator, p: MotionParams) -> tuple:
    """Centre x, y (px) and size (px) of the sprite at times ``s`` in [0, 1] for class ``label``.

    Draws the path of the pair's first class; the second class gets it at ``1 - s``."""
    k = p.sensor_px / 128
    mid = p.sensor_px / 2
    v = rng.uniform(*p.speed)
    size = rng.uniform(*p.size_px) * k
    pair, reverse = divmod(label, 2)
    q = (1 - s) if reverse else s
    d = q - 0.5
    if pair == 0:  # circle, clockwise on screen (y points down)
        cx, cy = mid + rng.uniform(-12, 12, 2) * k
        radius = rng.uniform(*p.circle_radius_px) * k
        angle = rng.uniform(0, 2 * np.pi) + 2 * np.pi * v * d
        x, y, side = cx + radius * np.cos(angle), cy + radius * np.sin(angle), np.full_like(s, size)
    elif pair in (1, 2, 3):  # swipes: horizontal, vertical, diagonal
        along = mid + rng.uniform(-8, 8) * k + p.swipe_px * k * v * d
        across = mid + rng.uniform(-30, 30) * k
        if pair == 1:
            x, y = along, np.full_like(s, across)
        elif pair == 2:
            x, y = np.full_like(s, across), along
        else:
            off = (across - mid) / np.sqrt(2)
            x, y = along + off, along - off
        side = np.full_like(s, size)
    else:  # approaching: growing sprite
        cx, cy = mid + rng.uniform(-16, 16, 2) * k
        x, y = np.full_like(s, cx), np.full_like(s, cy)
        side = size * np.exp(np.log(p.zoom_ratio) * v * d)
    return x, y, side


def scene(label: int, images: np.ndarray, rng: np.random.Generator, p: MotionParams) -> tuple[np.ndarray, int]:
    """Trajectories of one recording: ``(traj [O, 4, K + 1], sigma)`` for objects ``O`` (sprite, and the
    distractor where drawn) over the ``K + 1`` step times; rows cx, cy, f (px per image px), a (signed
    log contrast, ramp included). ``images`` holds the sprite and the distractor image ``[2, S, S]``."""
    n_steps = p.duration_us // p.step_us
    s = np.arange(n_steps + 1) * p.step_us / p.duration_us
    ramp = _ramp(s, p.ramp)
    sigma = 1 if rng.random() < 0.5 else -1
    x, y, side = _main_path(label, s, rng, p)
    contrast = rng.uniform(*p.contrast)
    rows = [np.stack([x, y, side / p.sprite_px, sigma * contrast * ramp])]
    if rng.random() < p.distractor_prob:
        k = p.sensor_px / 128
        start = rng.uniform(0.15, 0.85, 2) * p.sensor_px
        heading = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(*p.distractor_speed_px_s) * k * p.duration_us * 1e-6  # px per recording
        d = s - 0.5
        side_d = rng.uniform(*p.distractor_size_px) * k
        rows.append(
            np.stack(
                [
                    start[0] + speed * np.cos(heading) * d,
                    start[1] + speed * np.sin(heading) * d,
                    np.full_like(s, side_d / p.sprite_px),
                    sigma * rng.uniform(*p.contrast) * ramp,
                ]
            )
        )
    return np.stack(rows), sigma


def render_levels(images: np.ndarray, traj_k: np.ndarray, width: int, height: int) -> np.ndarray:
    """Log intensity ``[H * W]`` of the scene at one step (``traj_k``: ``[O, 4]``), the reference of
    :func:`mambaspike.kernels.dvs_numba.simulate`: the sum of each object's bilinear sprite sample."""
    s = images.shape[1]
    half = s / 2 - 0.5
    level = np.zeros((height, width))
    for o in range(len(images)):
        cx, cy, f, a = traj_k[o]
        u = (np.arange(width) + 0.5 - cx) / f + half
        v = (np.arange(height) + 0.5 - cy) / f + half
        iu, iv = np.floor(u), np.floor(v)
        fu, fv = (u - iu)[None, :], (v - iv)[:, None]
        iu, iv = iu.astype(np.int64), iv.astype(np.int64)
        padded = np.zeros((s + 2, s + 2))
        padded[1:-1, 1:-1] = images[o]

        def tap(i, j, padded=padded):
            return padded[(np.clip(j, -1, s) + 1)[:, None], (np.clip(i, -1, s) + 1)[None, :]]

        top = (1 - fu) * tap(iu, iv) + fu * tap(iu + 1, iv)
        bot = (1 - fu) * tap(iu, iv + 1) + fu * tap(iu + 1, iv + 1)
        level = level + a * ((1 - fv) * top + fv * bot)
    return level.reshape(-1)


def simulate_scene_reference(
    images: np.ndarray,
    traj: np.ndarray,
    ref: np.ndarray,
    c_on: np.ndarray,
    c_off: np.ndarray,
    width: int,
    height: int,
    step_us: float,
    refractory_us: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The DVS over every pixel and step of a scene with :func:`~mambaspike.data.dvs.dvs_step`
    (the reference of :func:`mambaspike.kernels.dvs_numba.simulate`). ``ref`` is updated in place.
    Returns ``(pixel, t µs, on)`` per event, unordered."""
    level0 = render_levels(images, traj[:, :, 0], width, height)
    t_free = np.full(level0.shape, -np.inf)
    parts = []
    for k in range(1, traj.shape[2]):
        level1 = render_levels(images, traj[:, :, k], width, height)
        fired = dvs_step(level0, level1, ref, t_free, c_on, c_off, (k - 1) * step_us, step_us, refractory_us)
        if fired is not None:
            parts.append(fired)
        level0 = level1
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool)
    pixel, t, on = (np.concatenate(x) for x in zip(*parts))
    return pixel, t, on


def simulate_scene(
    images: np.ndarray,
    traj: np.ndarray,
    ref: np.ndarray,
    c_on: np.ndarray,
    c_off: np.ndarray,
    width: int,
    height: int,
    step_us: float,
    refractory_us: float,
    reference: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`simulate_scene_reference`'s events, computed by the compiled kernel where it is available
    (``reference=True``: always the reference). Returns them sorted by (t, pixel, on)."""
    from mambaspike import kernels

    mod = None if reference else kernels.load("dvs_numba")
    out = None
    if mod is not None:
        level0 = render_levels(images, traj[:, :, 0], width, height)
        cap = FIRST_CAPACITY
        while True:
            buffers = (np.empty(cap, np.int64), np.empty(cap), np.empty(cap, np.bool_))
            r = ref.copy()
            try:
                n = mod.simulate(
                    np.ascontiguousarray(images, dtype=np.float64),
                    np.ascontiguousarray(traj, dtype=np.float64),
                    level0.copy(),
                    r,
                    c_on,
                    c_off,
                    width,
                    height,
                    float(step_us),
                    float(refractory_us),
                    *buffers,
                )
            except Exception as e:
                if not kernels.failed("dvs_numba", e):
                    raise
                break
            if n <= cap:
                ref[:] = r
                out = tuple(b[:n] for b in buffers)
                break
            cap = n
    if out is None:
        out = simulate_scene_reference(images, traj, ref, c_on, c_off, width, height, step_us, refractory_us)
    pixel, t, on = out
    order = np.lexsort((on, pixel, t))
    return pixel[order], t[order], on[order]


# --- the data set ----------------------------------------------------------------------------------


def _camera(seed: int, cam: int, p: MotionParams) -> dict:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, cam)))
    mean, std, noise = rng.uniform(*p.threshold_mean), rng.uniform(*p.threshold_std), rng.uniform(*p.noise_hz)
    c_on, c_off = camera_thresholds(rng, p.sensor_px**2, mean, std, p.threshold_min)
    return {"threshold_mean": mean, "threshold_std": std, "noise_hz": noise, "c_on": c_on, "c_off": c_off}


def digit_pools(seed: int, n_images: int, p: MotionParams) -> dict[str, np.ndarray]:
    """Disjoint sorted index sets into ``load_digits`` for the train and test sprites."""
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,))).permutation(n_images)
    n_test = int(round(p.test_digit_fraction * n_images))
    return {"test": np.sort(order[:n_test]), "train": np.sort(order[n_test:])}


def recording_plan(p: MotionParams) -> list[dict]:
    """Every recording: id, split, camera, group folder and label, in id order."""
    plan = []
    n_train_cams = p.n_cameras - p.test_cameras
    for cam in range(p.n_cameras):
        split = "train" if cam < n_train_cams else "test"
        for g in range(p.groups_per_camera):
            group = cam * p.groups_per_camera + g
            folder = f"user{group + 1:03d}_cam{cam:02d}"
            for label in range(len(CLASS_NAMES)):
                rid = group * len(CLASS_NAMES) + label
                plan.append({"id": rid, "split": split, "camera": cam, "folder": folder, "label": label})
    return plan


def simulate_recording(
    rec: dict, seed: int, sprites: np.ndarray, pools: dict, cameras: dict, p: MotionParams, reference: bool = False
) -> tuple[np.ndarray, dict]:
    """One recording as the int16 ``[N, 4]`` (x, y, p, t ms) array written to disk, and its metadata."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, rec["id"])))
    pool = pools[rec["split"]]
    digit, distractor = (int(v) for v in rng.choice(pool, 2, replace=False))
    traj, sigma = scene(rec["label"], sprites[[digit, distractor]], rng, p)
    cam = cameras[rec["camera"]]
    width = height = p.sensor_px
    level0 = render_levels(sprites[[digit, distractor]][: len(traj)], traj[:, :, 0], width, height)
    ref = initial_reference(level0, rng.random(width * height), cam["c_on"], cam["c_off"])
    pixel, t, on = simulate_scene(
        sprites[[digit, distractor]][: len(traj)],
        traj,
        ref,
        cam["c_on"],
        cam["c_off"],
        width,
        height,
        p.step_us,
        p.refractory_us,
        reference=reference,
    )
    pixel, t, on = jitter_and_noise(pixel, t, on, rng, width * height, p.duration_us, p.jitter_us, cam["noise_hz"])
    t = np.clip(t, 0, p.duration_us - 1)
    order = np.argsort(t, kind="stable")
    arr = np.empty((len(t), 4), dtype=np.int16)
    arr[:, 0] = pixel[order] % width
    arr[:, 1] = pixel[order] // width
    arr[:, 2] = on[order]
    arr[:, 3] = np.floor(t[order] / 1000)
    meta = {**rec, "digit": digit, "sigma": sigma, "distractor": distractor if len(traj) > 1 else None}
    meta["events"] = len(arr)
    return arr, meta


README = """\
DVS-Motion: digit sprites moving in front of a simulated 128x128 DVS, 10 time-reversed classes (mambaspike)
============================================================================================================

A sprite (a real scikit-learn 8x8 digit, upscaled, chosen at random) moves for 1.5 s in front of a
simulated DVS (log-intensity change against per-pixel ON/OFF thresholds, refractory period, timestamp
jitter, background noise). Classes, in time-reversed pairs: 0/1 clockwise / counter-clockwise circle,
2/3 left-to-right / right-to-left swipe, 4/5 downward / upward swipe, 6/7 diagonal down-right /
up-left, 8/9 approaching / receding. A class's time-summed ON/OFF frames have the same distribution as
its twin's; only the event order separates them.

Format: DVS Gesture's as tonic preprocesses it. One .npy per recording, an int16 [N, 4] array of
(x, y, p, t in ms), sorted by t:
    ibmGestureTrain/userNNN_camKK/<label>.npy, ibmGestureTest/userNNN_camKK/<label>.npy
Each folder is one recording group (one recording per class) of camera KK; train and test cameras,
and the digit images they show, are disjoint. meta.json holds the generator version, seed, every
parameter, the cameras and each recording's digit, polarity and distractor.
Regenerate by deleting this folder; the same seed gives byte-identical files.
"""


def generate(folder: Path, seed: int, params: MotionParams, workers: int | None = None, progress: bool = True):
    """Write the whole data set (``.npy`` files, README.txt, meta.json) into the empty ``folder``."""
    from sklearn.datasets import load_digits
    from tqdm import tqdm

    from mambaspike.data.ndigits import digit_images

    check_params(params)
    raw = load_digits().images
    sprites = digit_images(raw, size=params.sprite_px)
    pools = digit_pools(seed, len(raw), params)
    cameras = {cam: _camera(seed, cam, params) for cam in range(params.n_cameras)}
    plan = recording_plan(params)
    for rec in plan:
        (folder / SPLIT_FOLDERS[rec["split"]] / rec["folder"]).mkdir(parents=True, exist_ok=True)

    def run(rec):
        arr, meta = simulate_recording(rec, seed, sprites, pools, cameras, params)
        np.save(folder / SPLIT_FOLDERS[rec["split"]] / rec["folder"] / f"{rec['label']}.npy", arr)
        return meta

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        bar = tqdm(pool.map(run, plan), total=len(plan), desc="DVS-Motion", unit="rec", disable=not progress)
        records = list(bar)
    counts = np.array([r["events"] for r in records])
    meta = {
        "name": FOLDER_NAME,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "source": "sklearn.datasets.load_digits",
        "sensor_size": [params.sensor_px, params.sensor_px, 2],
        "class_names": list(CLASS_NAMES),
        "params": asdict(params),
        "cameras": {
            str(c): {k: float(v) for k, v in cam.items() if k in ("threshold_mean", "threshold_std", "noise_hz")}
            | {"split": "train" if c < params.n_cameras - params.test_cameras else "test"}
            for c, cam in cameras.items()
        },
        "digit_pools": {k: v.tolist() for k, v in pools.items()},
        "counts": {split: sum(r["split"] == split for r in records) for split in ("train", "test")},
        "events_per_recording": {
            "mean": float(counts.mean()),
            "min": int(counts.min()),
            "max": int(counts.max()),
        },
        "recordings": records,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    (folder / "README.txt").write_text(README)


def ensure_dvsmotion(
    root: str | Path, seed: int = 0, params: MotionParams = MotionParams(), progress: bool = True
) -> Path:
    """Return ``root/DVSMotion``, generating it first if it is missing (into a temporary folder that
    is renamed into place). Raises ``DatasetError`` if it exists with another seed or other parameters."""
    target = generate_once(root, FOLDER_NAME, "DVS-Motion", lambda tmp: generate(tmp, seed, params, progress=progress))
    meta = read_meta(target)
    if meta.get("seed") != seed or meta.get("params") != json.loads(json.dumps(asdict(params))):
        raise DatasetError(
            f"{target} was generated with seed {meta.get('seed')} and other parameters than requested "
            f"(seed {seed}); remove the folder to regenerate it"
        )
    return target


def _open(downsample: int):
    def open_dvsmotion(data_dir: Path, download: bool):
        from mambaspike.data.dvsgesture import open_gesture_npy

        root = ensure_dvsmotion(data_dir)
        return open_gesture_npy(root, downsample=downsample)

    return open_dvsmotion


def _entries():
    from mambaspike.data.registry import Augment, DatasetEntry

    common = dict(
        layout=f"DATA_DIR/{FOLDER_NAME}/ibmGestureTrain/userNNN_camKK/<label>.npy and .../ibmGestureTest/... "
        "(DVS Gesture's tonic layout; generated on first use, minutes)",
        source="generated offline by mambaspike (no download)",
        class_names=CLASS_NAMES,
        time_window_us=1_500_000,
        dt_us=75_000,  # T = 20, as DVS Gesture
        generated=True,
        folder=FOLDER_NAME,
    )
    return [
        DatasetEntry(
            name="dvs-motion",
            summary="DVS-Motion (embedded): digit sprites moving before a simulated DVS, 10 classes in "
            "time-reversed pairs, 128x128x2, 1,600/400 recordings of 1.5 s",
            open=_open(1),
            augment=Augment(max_shift=8, flip_x=False, drop=0.1),  # no flip: left/right are classes
            **common,
        ),
        DatasetEntry(
            name="dvs-motion-32",
            summary="DVS-Motion's recordings binned at 32x32x2 (x, y // 4): the CPU variant",
            open=_open(4),
            augment=Augment(max_shift=2, flip_x=False, drop=0.1),
            **common,
        ),
    ]


ENTRIES = _entries()
