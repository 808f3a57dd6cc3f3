"""The N-MNIST format: our writer against tonic's parser, and the validating folder reader."""

import shutil

import numpy as np
import pytest
import tonic
from tonic.datasets import NMNIST
from tonic.io import read_mnist_file

from mambaspike.data.errors import DatasetError
from mambaspike.data.ndigits import ensure_ndigits
from mambaspike.data.nmnist import EVENT_DTYPE, NMNISTFolder, read_nmnist_file, write_nmnist_file


@pytest.fixture(scope="session")
def ndigits_dir(tmp_path_factory):
    """The full N-Digits set, shared with the other test modules (generated once per session)."""
    return ensure_ndigits(tmp_path_factory.getbasetemp() / "data")


def _events(n, seed=0):
    rng = np.random.default_rng(seed)
    events = np.zeros(n, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, 34, n)
    events["y"] = rng.integers(0, 34, n)
    events["t"] = np.sort(rng.integers(0, 2**23, n))
    events["p"] = rng.integers(0, 2, n)
    return events


def test_writer_round_trips_through_tonic_parser(tmp_path):
    events = _events(1000)
    events["t"][[0, -1]] = 0, 2**23 - 1  # the extremes of the 23-bit timestamp
    write_nmnist_file(tmp_path / "a.bin", events)
    assert (tmp_path / "a.bin").stat().st_size == 5 * len(events)
    back = read_mnist_file(str(tmp_path / "a.bin"), dtype=NMNIST.dtype)
    for name in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(back[name], events[name])


def test_writer_rejects_unrepresentable_events(tmp_path):
    events = _events(10)
    events["t"][-1] = 2**23
    with pytest.raises(ValueError, match="range"):
        write_nmnist_file(tmp_path / "a.bin", events)


def _copy_subset(ndigits_dir, dest, per_class):
    """Copy the first `per_class` files of every class of both splits into dest/{Train,Test}/<digit>/."""
    for split in ("Train", "Test"):
        for digit in range(10):
            (dest / split / str(digit)).mkdir(parents=True)
            for f in sorted((ndigits_dir / split / str(digit)).glob("*.bin"))[:per_class]:
                shutil.copy(f, dest / split / str(digit) / f.name)


def test_tonic_nmnist_class_reads_the_same_as_ours(ndigits_dir, tmp_path, monkeypatch):
    _copy_subset(ndigits_dir, tmp_path / "NMNIST", per_class=3)
    monkeypatch.setattr(NMNIST, "_check_exists", lambda self: True)

    def no_download(self):
        raise AssertionError("tonic tried to download")

    monkeypatch.setattr(NMNIST, "download", no_download)
    for train in (True, False):
        theirs = tonic.datasets.NMNIST(str(tmp_path), train=train)
        ours = NMNISTFolder(tmp_path / "NMNIST", train=train)
        assert len(theirs) == len(ours) == 30
        np.testing.assert_array_equal(theirs.targets, ours.targets)
        for i in range(len(ours)):
            (ev_theirs, label_theirs), (ev_ours, label_ours) = theirs[i], ours[i]
            assert label_theirs == label_ours
            np.testing.assert_array_equal(ev_theirs, ev_ours)


def test_folder_lists_files_sorted_with_labels(tmp_path):
    for digit, names in ((2, ["b", "a"]), (10, ["c"]), (0, ["z"])):
        (tmp_path / "Train" / str(digit)).mkdir(parents=True)
        for name in names:
            write_nmnist_file(tmp_path / "Train" / str(digit) / f"{name}.bin", _events(5))
    folder = NMNISTFolder(tmp_path, train=True)
    assert [f"{f.parent.name}/{f.stem}" for f in folder.files] == ["0/z", "2/a", "2/b", "10/c"]
    np.testing.assert_array_equal(folder.targets, [0, 2, 2, 10])
    events, label = folder[1]
    assert label == 2 and events.dtype == EVENT_DTYPE and len(events) == 5
    assert folder.sensor_size == (34, 34, 2)


def test_truncated_file_is_an_error_naming_file_and_offset(tmp_path):
    path = tmp_path / "cut.bin"
    write_nmnist_file(path, _events(3))
    path.write_bytes(path.read_bytes()[:-3])  # 12 bytes: 2 events and 2 bytes of a third
    with pytest.raises(DatasetError, match=r"cut\.bin: 12 bytes .* offset 10"):
        read_nmnist_file(path)


def test_out_of_range_x_is_an_error_naming_the_event(tmp_path):
    events = _events(10)
    events["x"][4] = 34
    path = tmp_path / "wide.bin"
    write_nmnist_file(path, events)
    with pytest.raises(DatasetError, match=r"wide\.bin: event 4 \(byte offset 20\) has x=34"):
        read_nmnist_file(path)


def test_missing_folder_names_the_layout_and_source(tmp_path):
    with pytest.raises(DatasetError, match=r"ROOT/Train/<digit>/\*\.bin.*garrickorchard\.com"):
        NMNISTFolder(tmp_path / "nowhere", train=True)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "Test" / "0").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no .bin files"):
        NMNISTFolder(tmp_path, train=False)
