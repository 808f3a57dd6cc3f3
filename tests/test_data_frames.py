"""Event binning (against hand-computed cases and tonic's ToFrame) and the on-disk frame cache."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from tonic.transforms import ToFrame

from mambaspike.data import frames as frames_module
from mambaspike.data.frames import cached_frames, events_to_frames
from mambaspike.data.ndigits import digit_images, simulate_dvs
from mambaspike.data.nmnist import EVENT_DTYPE, NMNISTFolder, write_nmnist_file


def _events(rows):
    """Events from (x, y, t, p) rows."""
    return np.array([tuple(r) for r in rows], dtype=EVENT_DTYPE)


def test_hand_computed_bins_boundaries_and_polarity_channels():
    events = _events(
        [
            (0, 0, 0, 1),  # first µs of bin 0, ON
            (2, 1, 9_999, 0),  # last µs of bin 0, OFF
            (2, 1, 10_000, 0),  # first µs of bin 1
            (1, 0, 29_999, 1),  # last µs of the window
            (1, 0, 30_000, 1),  # at the window's end: dropped
        ]
    )
    frames = events_to_frames(events, sensor_size=(3, 2, 2), time_window_us=30_000, dt_us=10_000)
    expected = np.zeros((3, 2, 2, 3), dtype=np.uint8)  # [T, P, H, W]
    expected[0, 1, 0, 0] = 1
    expected[0, 0, 1, 2] = 1
    expected[1, 0, 1, 2] = 1
    expected[2, 1, 0, 1] = 1
    assert frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, expected)


def test_window_not_a_multiple_of_dt_rounds_bins_up():
    events = _events([(0, 0, 24_999, 0), (0, 0, 25_000, 0)])
    frames = events_to_frames(events, (1, 1, 2), time_window_us=25_000, dt_us=10_000)
    assert frames.shape == (3, 2, 1, 1)
    assert frames[2, 0, 0, 0] == 1 and frames.sum() == 1


def test_empty_events_and_empty_tail_bins():
    frames = events_to_frames(np.zeros(0, dtype=EVENT_DTYPE), (34, 34, 2), 300_000, 10_000)
    assert frames.shape == (30, 2, 34, 34) and not frames.any()
    frames = events_to_frames(_events([(3, 4, 5, 1)]), (34, 34, 2), 300_000, 10_000)
    assert frames[0, 1, 4, 3] == 1 and frames[1:].sum() == 0


def test_counts_clip_at_255():
    events = _events([(0, 0, t, 1) for t in range(300)])
    assert events_to_frames(events, (1, 1, 2), 1_000, 1_000)[0, 1, 0, 0] == 255


@pytest.mark.parametrize("dt_us", [1_000, 10_000, 100_000])
def test_equals_tonic_to_frame(dt_us):
    ev = simulate_dvs(digit_images(load_digits().images[:2]), seed=0)
    # add events exactly at bin boundaries and at the end of the window
    extra = _events([(5, 6, dt_us, 0), (7, 8, 2 * dt_us, 1), (9, 9, 300_000, 1)])
    for events in (ev[0], ev[1], np.sort(np.concatenate([ev[0], extra]), order="t", kind="stable")):
        ours = events_to_frames(events, (34, 34, 2), 300_000, dt_us)
        theirs = ToFrame(sensor_size=(34, 34, 2), time_window=dt_us, start_time=0, end_time=300_000)(events)
        np.testing.assert_array_equal(ours, theirs)


@pytest.fixture
def small_folder(tmp_path):
    """A tiny N-MNIST layout: 2 training files per digit."""
    events = simulate_dvs(digit_images(load_digits().images[:20]), seed=0)
    for i, ev in enumerate(events):
        (tmp_path / "data" / "Train" / str(i % 10)).mkdir(parents=True, exist_ok=True)
        write_nmnist_file(tmp_path / "data" / "Train" / str(i % 10) / f"{i:05d}.bin", ev)
    return NMNISTFolder(tmp_path / "data", train=True)


def test_cache_holds_the_split_and_is_reused(small_folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    path = cached_frames("tiny", small_folder, cache, 300_000, 10_000)
    frames = np.load(path, mmap_mode="r")
    assert frames.shape == (20, 30, 2, 34, 34) and frames.dtype == np.uint8
    for i in (0, 13):
        np.testing.assert_array_equal(frames[i], events_to_frames(small_folder[i][0], (34, 34, 2), 300_000, 10_000))

    def no_conversion(*args):
        raise AssertionError("cache miss")

    monkeypatch.setattr(frames_module, "events_to_frames", no_conversion)
    assert cached_frames("tiny", small_folder, cache, 300_000, 10_000) == path
    np.testing.assert_array_equal(np.load(path, mmap_mode="r"), frames)
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary file left


def test_cache_key_changes_with_every_binning_parameter_and_the_data(small_folder, tmp_path):
    def key(name="tiny", folder=small_folder, window=300_000, dt=10_000):
        return frames_module.frame_cache_path(name, folder, tmp_path / "cache", window, dt)

    base = key()
    assert key() == base
    assert key(dt=5_000) != base
    assert key(window=200_000) != base
    assert key(name="other") != base
    (small_folder.root / "Train" / "0" / "00000.bin").unlink()
    assert key(folder=NMNISTFolder(small_folder.root, train=True)) != base


def test_event_dtype_is_tonics():
    from tonic.datasets import NMNIST

    assert EVENT_DTYPE == NMNIST.dtype
