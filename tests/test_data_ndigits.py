"""N-Digits: the simulated DVS (determinism, event statistics, saccades) and the generated folder."""

import hashlib
import json
import os

import numpy as np
import pytest
from sklearn.datasets import load_digits
from tonic.datasets import NMNIST

from mambaspike.data import ndigits
from mambaspike.data.errors import DatasetError
from mambaspike.data.ndigits import DVSParams, digit_images, ensure_ndigits, simulate_dvs
from mambaspike.data.nmnist import encode_nmnist


@pytest.fixture(scope="session")
def ndigits_dir(tmp_path_factory):
    """The full N-Digits set, generated once per session (other test modules share the folder)."""
    return ensure_ndigits(tmp_path_factory.getbasetemp() / "data")


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def images(digits):
    return digit_images(digits.images[:20])  # [20, 26, 26]


@pytest.fixture(scope="module")
def events(images):
    return simulate_dvs(images, seed=0)


def _bytes(events):
    return [encode_nmnist(ev) for ev in events]


def test_digit_images_are_upscaled_into_unit_range(images):
    assert images.shape == (20, 26, 26)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.max() > 0.9  # full ink survives the upscaling


def test_same_seed_gives_identical_events(images, events):
    again = simulate_dvs(images[:4], seed=0, workers=1)
    assert _bytes(again) == _bytes(events[:4])


def test_events_do_not_depend_on_batching(images, events):
    alone = simulate_dvs(images[[7]], seed=0, sample_ids=[7])
    assert _bytes(alone) == _bytes(events[7:8])


def test_different_seed_gives_different_events(images, events):
    other = simulate_dvs(images[:4], seed=1)
    assert all(a != b for a, b in zip(_bytes(other), _bytes(events[:4])))


def test_event_statistics(events):
    duration = DVSParams().duration_us
    for ev in events:
        assert ev.dtype == NMNIST.dtype
        assert 1_500 <= len(ev) <= 8_000
        assert set(np.unique(ev["p"])) == {0, 1}
        assert ev["t"].min() >= 0 and ev["t"].max() < duration
        assert np.all(np.diff(ev["t"]) >= 0)
        assert ev["x"].min() >= 0 and ev["x"].max() < 34
        assert ev["y"].min() >= 0 and ev["y"].max() < 34


def test_three_saccades_are_three_bursts(events):
    for ev in events:
        hist = np.bincount(ev["t"] // 10_000, minlength=30)  # events per 10 ms bin
        peaks = [hist[s * 10 : s * 10 + 10].max() for s in range(3)]
        assert all(3 <= np.argmax(hist[s * 10 : s * 10 + 10]) <= 6 for s in range(3))  # mid-saccade
        for boundary in (10, 20):  # the bins either side of 100 ms and 200 ms
            assert hist[boundary - 1 : boundary + 1].max() < 0.15 * min(peaks)


def test_digit_stays_inside_the_field():
    with pytest.raises(ValueError, match="inside"):
        simulate_dvs(np.zeros((1, 28, 28)), seed=0)


def test_full_set_layout_and_stratified_split(ndigits_dir, digits):
    files = sorted(ndigits_dir.glob("*/*/*.bin"))
    assert len(files) == 1797
    ids = {int(f.stem): (f.parts[-3], int(f.parts[-2])) for f in files}
    assert sorted(ids) == list(range(1797))
    assert all(label == digits.target[i] for i, (_, label) in ids.items())
    test_counts = np.bincount([label for split, label in ids.values() if split == "Test"], minlength=10)
    class_counts = np.bincount(digits.target, minlength=10)
    assert test_counts.sum() == 360
    assert np.all(np.abs(test_counts - 0.2 * class_counts) <= 1)
    meta = json.loads((ndigits_dir / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["generator_version"] == ndigits.GENERATOR_VERSION
    assert meta["counts"]["train"] == 1437 and meta["counts"]["test"] == 360
    assert meta["params"]["threshold_mean"] == DVSParams().threshold_mean
    assert (ndigits_dir / "README.txt").is_file()
    assert not list(ndigits_dir.parent.glob(".N-Digits-*"))  # no temporary folder left


def test_full_generation_matches_simulate_dvs(ndigits_dir, digits):
    ids = np.array([0, 901, 1796])
    expected = simulate_dvs(digit_images(digits.images[ids]), seed=0, sample_ids=ids)
    for i, ev in zip(ids, expected):
        (path,) = ndigits_dir.glob(f"*/{digits.target[i]}/{i:05d}.bin")
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(encode_nmnist(ev)).digest()


def test_existing_set_with_other_seed_is_an_error(ndigits_dir):
    with pytest.raises(DatasetError, match="seed 0, not the requested seed 1"):
        ensure_ndigits(ndigits_dir.parent, seed=1)


def _fake_generate(folder, seed, params):
    (folder / "meta.json").write_text(json.dumps({"seed": seed, "writer": "this process"}))


def test_generation_that_loses_a_race_keeps_the_winner(tmp_path, monkeypatch):
    def generate_while_another_process_finishes(folder, seed, params):
        (tmp_path / "N-Digits").mkdir()
        (tmp_path / "N-Digits" / "meta.json").write_text(json.dumps({"seed": seed, "writer": "other"}))
        _fake_generate(folder, seed, params)

    monkeypatch.setattr(ndigits, "_generate", generate_while_another_process_finishes)
    target = ensure_ndigits(tmp_path)
    assert json.loads((target / "meta.json").read_text())["writer"] == "other"
    assert os.listdir(tmp_path) == ["N-Digits"]


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(folder, seed, params):
        (folder / "Train").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(ndigits, "_generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_ndigits(tmp_path)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(ndigits, "_generate", _fake_generate)
    assert ensure_ndigits(tmp_path) == tmp_path / "N-Digits"


def test_unwritable_data_dir_is_a_dataset_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DatasetError, match="cannot write N-Digits"):
        ensure_ndigits(tmp_path / "file" / "data")
