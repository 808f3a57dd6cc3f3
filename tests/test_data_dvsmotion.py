"""DVS-Motion: the compiled scene kernel against its reference, deterministic generation in DVS Gesture's
layout read back by the DVS Gesture loader, disjoint cameras and digits, and the time-reversal symmetry
of the summed frames."""

import hashlib
import json

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from mambaspike import kernels
from mambaspike.data import dataset_names, dataset_status, get_entry
from mambaspike.data import dvsmotion as dm
from mambaspike.data.dvsgesture import open_gesture_npy, read_gesture_npy
from mambaspike.data.errors import DatasetError
from mambaspike.data.ndigits import digit_images

# A small camera (48 px, 0.6 s) and two cameras of one recording group each: 20 recordings.
TINY = dm.MotionParams(sensor_px=48, duration_us=600_000, n_cameras=2, test_cameras=1, groups_per_camera=1)


@pytest.fixture(scope="module")
def sprites():
    return digit_images(load_digits().images, size=TINY.sprite_px)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return dm.ensure_dvsmotion(tmp_path_factory.mktemp("dvsm"), seed=3, params=TINY, progress=False)


def _digest(folder):
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


def _scene(sprites, label, seed, distractor):
    p = dm.MotionParams(sensor_px=48, duration_us=300_000, distractor_prob=float(distractor))
    rng = np.random.default_rng(seed)
    traj, _ = dm.scene(label, sprites[[5, 9]], rng, p)
    images = sprites[[5, 9]][: len(traj)]
    c_on, c_off = (np.maximum(rng.normal(0.2, 0.03, 48 * 48), 0.05) for _ in range(2))
    level0 = dm.render_levels(images, traj[:, :, 0], 48, 48)
    ref = dm.initial_reference(level0, rng.random(48 * 48), c_on, c_off)
    return images, traj, ref, c_on, c_off, p


@pytest.mark.parametrize("label, distractor", [(0, True), (3, False), (8, True), (9, False)])
def test_kernel_matches_reference(sprites, label, distractor):
    assert kernels.available("dvs_numba")
    images, traj, ref, c_on, c_off, p = _scene(sprites, label, label, distractor)
    assert len(traj) == 1 + distractor
    ref_k = ref.copy()
    fast = dm.simulate_scene(images, traj, ref_k, c_on, c_off, 48, 48, p.step_us, p.refractory_us)
    slow = dm.simulate_scene(images, traj, ref, c_on, c_off, 48, 48, p.step_us, p.refractory_us, reference=True)
    assert len(fast[0]) > 200
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ref_k, ref)  # final reference levels too


def test_kernel_grows_its_event_buffers(sprites, monkeypatch):
    images, traj, ref, c_on, c_off, p = _scene(sprites, 2, 0, True)
    whole = dm.simulate_scene(images, traj, ref.copy(), c_on, c_off, 48, 48, p.step_us, p.refractory_us)
    monkeypatch.setattr(dm, "FIRST_CAPACITY", 10)
    again = dm.simulate_scene(images, traj, ref.copy(), c_on, c_off, 48, 48, p.step_us, p.refractory_us)
    assert len(whole[0]) > 10
    for a, b in zip(whole, again):
        np.testing.assert_array_equal(a, b)


def test_generation_is_deterministic_and_seeded(tiny_dir, tmp_path):
    again = dm.ensure_dvsmotion(tmp_path / "a", seed=3, params=TINY, progress=False)
    assert _digest(again) == _digest(tiny_dir)
    other = dm.ensure_dvsmotion(tmp_path / "b", seed=4, params=TINY, progress=False)
    assert _digest(other) != _digest(tiny_dir)


def test_generation_without_the_kernel_gives_the_same_bytes(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(kernels.ENV, "off")
    again = dm.ensure_dvsmotion(tmp_path, seed=3, params=TINY, progress=False)
    assert _digest(again) == _digest(tiny_dir)


def test_written_in_dvs_gesture_layout_and_read_by_its_loader(tiny_dir):
    train, test = open_gesture_npy(tiny_dir)
    assert (len(train), len(test)) == (10, 10)
    assert sorted(train.targets.tolist()) == list(range(10)) == sorted(test.targets.tolist())
    assert train._read is read_gesture_npy and train.sensor_size == (128, 128, 2)
    f = tiny_dir / "ibmGestureTest" / "user002_cam01" / "7.npy"
    arr = np.load(f)
    assert arr.dtype == np.int16 and arr.shape[1] == 4
    events, label = test[test.keys.index(f)]
    assert label == 7
    np.testing.assert_array_equal(events["t"], 1000 * (arr[:, 3].astype(np.int64) - arr[:, 3].min()))
    np.testing.assert_array_equal(events["x"], arr[:, 0])
    assert events["x"].max() < TINY.sensor_px and set(np.unique(events["p"]).tolist()) == {0, 1}
    assert np.all(np.diff(events["t"]) >= 0)


def test_downsampled_reading(tiny_dir):
    full, _ = open_gesture_npy(tiny_dir)
    small, _ = open_gesture_npy(tiny_dir, downsample=4)
    assert small.sensor_size == (32, 32, 2) and small.params == {"downsample": 4}
    a, b = full[3][0], small[3][0]
    np.testing.assert_array_equal(b["x"], a["x"] // 4)
    np.testing.assert_array_equal(b["t"], a["t"])
    assert small.identity() != full.identity()  # its own frame cache


def test_train_and_test_cameras_and_digits_are_disjoint(tiny_dir):
    meta = json.loads((tiny_dir / "meta.json").read_text())
    recs = meta["recordings"]
    by_split = {s: [r for r in recs if r["split"] == s] for s in ("train", "test")}
    cams = {s: {r["camera"] for r in rs} for s, rs in by_split.items()}
    digits = {s: {r["digit"] for r in rs} | {r["distractor"] for r in rs} - {None} for s, rs in by_split.items()}
    assert cams["train"] and cams["test"] and not cams["train"] & cams["test"]
    assert not digits["train"] & digits["test"]
    assert not set(meta["digit_pools"]["train"]) & set(meta["digit_pools"]["test"])
    assert digits["test"] <= set(meta["digit_pools"]["test"])
    for split, folder in dm.SPLIT_FOLDERS.items():
        names = {d.name for d in (tiny_dir / folder).iterdir()}
        assert names == {r["folder"] for r in by_split[split]}


def test_recording_plan_at_full_size():
    plan = dm.recording_plan(dm.MotionParams())
    assert len(plan) == 2000 and [r["id"] for r in plan] == list(range(2000))
    assert sum(r["split"] == "test" for r in plan) == 400
    assert len({(r["folder"], r["label"]) for r in plan}) == 2000


def _features(sprites, label, n, p):
    """Per recording: log1p summed ON/OFF counts and 3 time bins' counts (8x8 px), and the signed
    rotation of the event centroid over 6 time bins (sum of cross products about the mean)."""
    pools = dm.digit_pools(0, len(sprites), p)
    cams = {c: dm._camera(0, c, p) for c in range(p.n_cameras)}
    plan = [r for r in dm.recording_plan(p) if r["label"] == label][:n]
    summed, binned, rotation = [], [], []
    side = p.sensor_px // 6
    for rec in plan:
        arr, _ = dm.simulate_recording(rec, 0, sprites, pools, cams, p)
        x, y, pol, t = (arr[:, i].astype(np.int64) for i in range(4))
        bins = np.minimum(t * 3 // (p.duration_us // 1000), 2)
        flat = ((bins * 2 + pol) * side + y // 6) * side + x // 6
        counts = np.bincount(flat, minlength=3 * 2 * side * side).reshape(3, -1)
        summed.append(np.log1p(counts.sum(0)))
        binned.append(np.log1p(counts).reshape(-1))
        six = np.minimum(t * 6 // (p.duration_us // 1000), 5)
        c = np.array([[x[six == k].mean(), y[six == k].mean()] for k in range(6)]) - [x.mean(), y.mean()]
        rotation.append(np.sum(c[:-1, 0] * c[1:, 1] - c[:-1, 1] * c[1:, 0]))
    return np.array(summed), np.array(binned), np.array(rotation)


@pytest.mark.parametrize("pair", [0, 1, 4])
def test_time_reversed_twins_have_the_same_summed_frames(sprites, pair):
    """A linear classifier cannot tell a class from its twin by the summed frames; time order can (a
    linear classifier on 3 time bins for swipes and zooms, the centroid's rotation for circles)."""
    p = dm.MotionParams(sensor_px=48, n_cameras=10, groups_per_camera=4, distractor_prob=0.0)
    (sa, ba, ra), (sb, bb, rb) = (_features(sprites, 2 * pair + d, 40, p) for d in (0, 1))
    y = np.repeat([0, 1], 40)
    clf = LogisticRegression(C=0.1, max_iter=2000)
    summed = cross_val_score(clf, np.concatenate([sa, sb]), y, cv=5).mean()
    assert summed <= 0.7, summed
    if pair == 0:  # clockwise on screen (y down) turns positively
        assert (ra > 0).mean() >= 0.9 and (rb < 0).mean() >= 0.9
    else:
        assert cross_val_score(clf, np.concatenate([ba, bb]), y, cv=5).mean() >= 0.9


def test_bad_input_errors(tmp_path, tiny_dir):
    with pytest.raises(ValueError, match=r"MotionParams.refractory_us = 5000.0: expected in \[0, step_us\]"):
        dm.check_params(dm.MotionParams(refractory_us=5000.0))
    with pytest.raises(ValueError, match="MotionParams.test_cameras = 2"):
        dm.check_params(dm.MotionParams(n_cameras=2, test_cameras=2))
    with pytest.raises(ValueError, match="MotionParams.duration_us"):
        dm.check_params(dm.MotionParams(duration_us=1_000_001))
    with pytest.raises(DatasetError, match="downsample must be one of 1, 2, 4, 8.*got 3"):
        open_gesture_npy(tiny_dir, downsample=3)
    with pytest.raises(DatasetError, match="generated with seed 3"):
        dm.ensure_dvsmotion(tiny_dir.parent, seed=0, params=TINY)
    (tmp_path / dm.FOLDER_NAME).mkdir()
    with pytest.raises(DatasetError, match="has no meta.json"):
        dm.ensure_dvsmotion(tmp_path, params=TINY)
    with pytest.raises(DatasetError, match="no train split"):
        open_gesture_npy(tmp_path)


def test_registered_and_listed_without_generating(tmp_path):
    assert {"dvs-motion", "dvs-motion-32"} <= set(dataset_names())
    entry = get_entry("dvs-motion")
    assert len(entry.class_names) == 10 and entry.generated and entry.folder == dm.FOLDER_NAME
    rows = {r["name"]: r for r in dataset_status(tmp_path)}
    assert rows["dvs-motion"]["status"].startswith("not generated yet")
    assert not (tmp_path / dm.FOLDER_NAME).exists()
