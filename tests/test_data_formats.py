"""Every loader on tiny files written here in the data set's native byte layout (never downloaded):
dtypes, units (µs), sensor sizes, labels, splits; corrupt or truncated files give our clear error."""

import time

import numpy as np
import pytest
import torch

from mambaspike.data import DatasetError, get_datasets
from mambaspike.data.cifar import write_batch
from mambaspike.data.cifar10dvs import CLASS_NAMES as CIFAR_CLASSES
from mambaspike.data.cifar10dvs import encode_aedat2, read_aedat2
from mambaspike.data.dvsgesture import encode_aedat31, parse_aedat31, read_gesture_npy, read_labels_csv
from mambaspike.data.errors import DatasetMissing
from mambaspike.data.mnist import PERMUTATION, encode_idx, parse_idx
from mambaspike.data.registry import dataset_names, get_entry
from mambaspike.data.sources import event_array

h5py = pytest.importorskip("h5py")
from mambaspike.data.ntidigits import write_ntidigits_file
from mambaspike.data.shd import write_shd_file


def _events(n, seed, t_max_us=200_000, size=128):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, t_max_us, n))
    return event_array(rng.integers(0, size, n), rng.integers(0, size, n), t, rng.integers(0, 2, n))


# --- DVS Gesture --------------------------------------------------------------------------------------


def _write_gesture_npy(root, n_users=(2, 1), per_class=1):
    for folder, users in (("ibmGestureTrain", range(n_users[0])), ("ibmGestureTest", range(10, 10 + n_users[1]))):
        for u in users:
            d = root / "DVSGesture" / folder / f"user{u:02d}_fluorescent"
            d.mkdir(parents=True)
            for label in range(11):
                ev = _events(50, seed=u * 100 + label)
                arr = np.stack([ev["x"], ev["y"], ev["p"], ev["t"] / 1000.0 + 5.0], axis=1)  # t in ms
                np.save(d / f"{label}.npy", arr)


def test_dvsgesture_npy_layout(tmp_path):
    _write_gesture_npy(tmp_path)
    train, val, test, info = get_datasets(
        "dvsgesture", tmp_path, time_window_us=200_000, dt_us=50_000, val_fraction=0.5
    )
    assert info.input_shape == (2, 128, 128) and info.T == 4 and info.num_classes == 11
    assert len(train) + len(val) == 22 and len(test) == 11
    x, y = test[3]
    assert x.dtype == torch.float32 and x.shape == (4, 2, 128, 128) and y == 3
    assert x.sum() == 50  # every event inside the window (t shifted to start at 0)


def test_dvsgesture_npy_units_and_bad_rows(tmp_path):
    path = tmp_path / "0.npy"
    np.save(path, np.array([[1, 2, 1, 0.5], [3, 4, 0, 1.25]]))
    ev = read_gesture_npy(path)
    assert ev["t"].tolist() == [0, 750] and ev["x"].tolist() == [1, 3] and ev["p"].tolist() == [1, 0]
    np.save(path, np.array([[1, 200, 1, 0.5]]))
    with pytest.raises(DatasetError, match=r"0.npy: row 0 field y=200"):
        read_gesture_npy(path)
    np.save(path, np.zeros((3, 3)))
    with pytest.raises(DatasetError, match=r"\[N, 4\]"):
        read_gesture_npy(path)
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetError, match="not a readable .npy"):
        read_gesture_npy(path)


def _write_gesture_aedat(root):
    root = root / "DVSGesture"
    root.mkdir()
    for split, users in (("train", (1, 2)), ("test", (3,))):
        names = []
        for u in users:
            name = f"user{u:02d}_led"
            ev = _events(400, seed=u, t_max_us=1_100_000)
            (root / f"{name}.aedat").write_bytes(encode_aedat31(ev, packet_events=64))
            rows = [f"{c},{100_000 * c},{100_000 * c + 90_000}" for c in range(1, 12)]  # class 1..11
            (root / f"{name}_labels.csv").write_text("class,startTime_usec,endTime_usec\n" + "\n".join(rows) + "\n")
            names.append(f"{name}.aedat")
        (root / f"trials_to_{split}.txt").write_text("\n".join(names) + "\n")


def test_dvsgesture_aedat31_cut_per_gesture(tmp_path):
    _write_gesture_aedat(tmp_path)
    train, val, test, info = get_datasets(
        "dvsgesture", tmp_path, time_window_us=100_000, dt_us=50_000, val_fraction=0.5
    )
    assert len(train) + len(val) == 22 and len(test) == 11 and info.input_shape == (2, 128, 128)
    ev = _events(400, seed=3, t_max_us=1_100_000)
    for label in (0, 10):
        x, y = test[label]
        start = 100_000 * (label + 1)
        n = ((ev["t"] >= start) & (ev["t"] < start + 90_000)).sum()
        assert (
            y == label
            and x.sum() == n
            and x[1:].sum() == ((ev["t"] >= start + 50_000) & (ev["t"] < start + 90_000)).sum()
        )


def test_aedat31_parser_round_trip_overflow_and_errors(tmp_path):
    ev = _events(10, seed=0)
    out = parse_aedat31(encode_aedat31(ev, packet_events=3, overflow=1))
    assert out["t"].dtype == np.int64 and (out["t"] == ev["t"] + (1 << 31)).all()
    assert (out["x"] == ev["x"]).all() and (out["y"] == ev["y"]).all() and (out["p"] == ev["p"]).all()
    data = encode_aedat31(ev, packet_events=3)
    with pytest.raises(DatasetError, match=r"f.aedat: byte offset \d+: packet of \d+ x 8-byte events runs past"):
        parse_aedat31(data[:-5], "f.aedat")
    with pytest.raises(DatasetError, match="not an AEDAT 3"):
        parse_aedat31(b"#!AER-DAT2.0\r\n", "f.aedat")
    with pytest.raises(DatasetError, match="END-HEADER"):
        parse_aedat31(b"#!AER-DAT3.1\r\n#Format", "f.aedat")
    head = data.index(b"#!END-HEADER\r\n") + 14
    with pytest.raises(DatasetError, match=f"byte offset {head}: truncated packet header"):
        parse_aedat31(data[: head + 10], "f.aedat")


def test_labels_csv_errors_name_the_line(tmp_path):
    path = tmp_path / "u_labels.csv"
    path.write_text("class,startTime_usec,endTime_usec\n1,0,10\n12,0,10\n")
    with pytest.raises(DatasetError, match="line 3: class 12"):
        read_labels_csv(path)
    path.write_text("class,startTime_usec,endTime_usec\n1,x,10\n")
    with pytest.raises(DatasetError, match="line 2"):
        read_labels_csv(path)


# --- CIFAR10-DVS --------------------------------------------------------------------------------------


def _write_cifar10dvs(root, per_class=10):
    for c, name in enumerate(CIFAR_CLASSES):
        d = root / "CIFAR10DVS" / name
        d.mkdir(parents=True)
        for i in range(per_class):
            ev = _events(30, seed=c * 100 + i)
            ev["t"] += 1_000_000  # recordings do not start at 0
            (d / f"cifar10_{name}_{i}.aedat").write_bytes(encode_aedat2(ev))


def test_cifar10dvs_aedat2_split_by_file_index(tmp_path):
    _write_cifar10dvs(tmp_path)
    train, val, test, info = get_datasets(
        "cifar10dvs", tmp_path, time_window_us=300_000, dt_us=100_000, val_fraction=0.5
    )
    assert len(test) == 10 and len(train) + len(val) == 90 and info.input_shape == (2, 128, 128)
    assert test.targets.tolist() == list(range(10))  # file index 9 of each class (sorted numerically)
    x, y = test[2]
    assert x.shape == (3, 2, 128, 128) and y == 2 and x.sum() == 30


def test_aedat2_reader_and_errors(tmp_path):
    ev = _events(20, seed=1)
    ev["t"] += 7
    path = tmp_path / "a.aedat"
    path.write_bytes(encode_aedat2(ev))
    out = read_aedat2(path)
    assert (out["x"] == ev["x"]).all() and (out["y"] == ev["y"]).all() and (out["p"] == ev["p"]).all()
    assert (out["t"] == ev["t"] - ev["t"].min()).all()
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(DatasetError, match=r"a.aedat: .* not a multiple of 8; truncated event at byte offset"):
        read_aedat2(path)
    path.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="byte offset 0: not an AEDAT 2.0"):
        read_aedat2(path)
    head = data[: len(data) - 160]
    path.write_bytes(head + (0x12345678).to_bytes(4, "big") + bytes(4))
    with pytest.raises(DatasetError, match=rf"event 0 \(byte offset {len(head)}\) has address 0x12345678"):
        read_aedat2(path)


def test_aedat4_without_the_aedat_package_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from mambaspike.data.cifar10dvs import read_aedat4

    monkeypatch.setitem(sys.modules, "aedat", None)  # import aedat -> ImportError
    with pytest.raises(DatasetError, match=r"x.aedat4: reading .aedat4 needs the 'aedat' package"):
        read_aedat4(tmp_path / "x.aedat4")


def test_corrupt_aedat4_is_our_error(tmp_path):
    pytest.importorskip("aedat", reason="the optional 'aedat' package is not installed (pip install '.[aedat4]')")
    from mambaspike.data.cifar10dvs import read_aedat4

    path = tmp_path / "x.aedat4"
    path.write_bytes(b"#!AER-DAT4.0\r\n" + bytes(7))
    with pytest.raises(DatasetError, match="x.aedat4: not a readable AEDAT 4 file"):
        read_aedat4(path)


# --- SHD and N-TIDIGITS -------------------------------------------------------------------------------


def test_shd_h5(tmp_path):
    (tmp_path / "SHD").mkdir()
    for split, n in (("train", 40), ("test", 20)):
        samples = [(np.array([0.0, 0.0105, 0.5]), np.array([3, 699, 3])) for _ in range(n)]
        write_shd_file(tmp_path / "SHD" / f"shd_{split}.h5", samples, [i % 20 for i in range(n)])
    train, val, test, info = get_datasets("shd", tmp_path, val_fraction=0.5)
    assert info.input_shape == (700,) and info.T == 100 and info.num_classes == 20
    x, y = test[5]
    assert x.shape == (100, 700) and y == 5
    assert x[0, 3] == 1 and x[1, 699] == 1 and x[50, 3] == 1 and x.sum() == 3


def test_shd_errors_name_the_field(tmp_path):
    path = tmp_path / "SHD" / "shd_train.h5"
    path.parent.mkdir()
    write_shd_file(path, [(np.array([0.1]), np.array([800]))], [0])
    write_shd_file(path.with_name("shd_test.h5"), [(np.array([0.1]), np.array([1]))], [25])
    from mambaspike.data.shd import SpikeTrainFile

    with pytest.raises(DatasetError, match="spikes/units outside 0..699"):
        SpikeTrainFile(path, "train")[0]
    with pytest.raises(DatasetError, match="field 'labels' sample 0 = 25"):
        SpikeTrainFile(path.with_name("shd_test.h5"), "test")
    path.write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="shd_train.h5: not a readable HDF5"):
        SpikeTrainFile(path, "train")
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=np.zeros(1, np.uint8))
    with pytest.raises(DatasetError, match="field 'spikes/times' missing"):
        SpikeTrainFile(path, "train")


def test_ntidigits_hdf5_single_digits(tmp_path):
    parts = {}
    for split, n in (("train", 22), ("test", 11)):
        parts[split] = {f"sp{i}-a-{'o123456789z'[i % 11]}": ([i % 64, 5], [0.001, 0.0305]) for i in range(n)}
        parts[split][f"sp99-a-12{split}"] = ([1], [0.0])  # a multi-digit sequence: skipped
    (tmp_path / "NTIDIGITS18").mkdir()
    write_ntidigits_file(tmp_path / "NTIDIGITS18" / "n-tidigits.hdf5", parts)
    train, val, test, info = get_datasets("ntidigits", tmp_path, time_window_us=50_000, dt_us=10_000, val_fraction=0.5)
    assert info.input_shape == (64,) and info.T == 5 and info.num_classes == 11
    assert len(test) == 11 and len(train) + len(val) == 22
    x, y = test[10]
    assert y == 10 and x.shape == (5, 64) and x[0, 10] == 1 and x[3, 5] == 1 and x.sum() == 2


# --- MNIST, sequential MNIST, CIFAR -------------------------------------------------------------------


def _write_mnist(root, n=(30, 10), gz=False):
    import gzip

    d = root / "MNIST"
    d.mkdir()
    rng = np.random.default_rng(0)
    for prefix, count in zip(("train", "t10k"), n):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            data = encode_idx(arr)
            (d / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    return images  # the test images


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_variants(tmp_path, gz):
    test_images = _write_mnist(tmp_path, gz=gz)
    expected = {
        "mnist": ((1, 1, 28, 28), (1, 28, 28)),
        "smnist": ((784, 1), (1,)),
        "psmnist": ((784, 1), (1,)),
        "smnist-rate": ((20, 1, 28, 28), (1, 28, 28)),
    }
    for name, (shape, input_shape) in expected.items():
        train, val, test, info = get_datasets(name, tmp_path, val_fraction=0.5)
        x, y = test[4]
        assert x.shape == shape and x.dtype == torch.float32 and y == 4 and info.input_shape == input_shape
        assert info.T == shape[0] and len(test) == 10 and len(train) + len(val) == 30
    img = test_images[4].astype(np.float32) / 255
    assert np.allclose(get_datasets("smnist", tmp_path, val_fraction=0.5)[2][4][0][:, 0].numpy(), img.reshape(-1))
    assert np.allclose(
        get_datasets("psmnist", tmp_path, val_fraction=0.5)[2][4][0][:, 0].numpy(), img.reshape(-1)[PERMUTATION]
    )
    rate = get_datasets("smnist-rate", tmp_path, time_window_us=400_000, dt_us=1_000, val_fraction=0.5)[2][4][0]
    assert set(rate.unique().tolist()) <= {0.0, 1.0} and rate.shape[0] == 400
    assert abs(rate.mean(0)[0].numpy() - img).mean() < 0.05  # spike rate ~ intensity
    assert torch.equal(
        rate, get_datasets("smnist-rate", tmp_path, time_window_us=400_000, dt_us=1_000, val_fraction=0.5)[2][4][0]
    )
    with pytest.raises(DatasetError, match="do not apply to smnist"):
        get_datasets("smnist", tmp_path, dt_us=5, val_fraction=0.5)


def test_idx_errors_name_offset_and_field():
    good = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert parse_idx(good, "f", 3).shape == (2, 28, 28)
    with pytest.raises(DatasetError, match="f: byte offset 0: magic 0x00000801, expected 0x00000803"):
        parse_idx(encode_idx(np.zeros(12, np.uint8)), "f", 3)
    with pytest.raises(DatasetError, match=r"f: 1583 bytes, expected 1584 for dimensions \[2, 28, 28\]"):
        parse_idx(good[:-1], "f", 3)


def test_cifar_pickles(tmp_path):
    rng = np.random.default_rng(0)
    d10, d100 = tmp_path / "cifar-10-batches-py", tmp_path / "cifar-100-python"
    d10.mkdir(), d100.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_batch(d10 / name, rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8), range(10))
    images = rng.integers(0, 256, (100, 3, 32, 32), dtype=np.uint8)
    write_batch(d100 / "train", np.concatenate([images, images]), list(range(100)) * 2, b"fine_labels")
    write_batch(d100 / "test", images, range(100), b"fine_labels")
    train, val, test, info = get_datasets("cifar10", tmp_path, val_fraction=0.5)
    assert len(train) + len(val) == 50 and len(test) == 10 and info.input_shape == (3, 32, 32) and info.T == 1
    train, val, test, info = get_datasets("cifar100", tmp_path, val_fraction=0.5)
    x, y = test[7]
    assert info.num_classes == 100 and y == 7 and x.shape == (1, 3, 32, 32)
    assert torch.allclose(x[0], torch.from_numpy(images[7] / 255.0).float())


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    import os
    import pickle

    from mambaspike.data.cifar import read_batch

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DatasetError, match="refusing to load"):
        read_batch(path, b"labels", 10)


# --- missing data ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in dataset_names() if not get_entry(n).generated])
def test_missing_data_set_is_a_quick_error_naming_layout_and_source(tmp_path, name):
    start = time.perf_counter()
    with pytest.raises(DatasetMissing) as err:
        get_datasets(name, tmp_path)
    assert time.perf_counter() - start < 2
    entry = get_entry(name)
    assert entry.layout in str(err.value) and entry.source in str(err.value)
