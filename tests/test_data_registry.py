"""The data-set registry used by the trainer: get_datasets, DataInfo, collate_time_first."""

import pickle
import shutil
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mambaspike.data import DataInfo, DatasetError, collate_time_first, dataset_defaults, dataset_names, get_datasets
from mambaspike.data.ndigits import ensure_ndigits


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory):
    """A data folder holding the full N-Digits set, shared with the other test modules."""
    root = tmp_path_factory.getbasetemp() / "data"
    ensure_ndigits(root)
    return root


def test_names_and_defaults():
    assert dataset_names()[0] == "ndigits" and "nmnist" in dataset_names()
    for name in ("ndigits", "nmnist"):
        assert dataset_defaults(name) == {"time_window_us": 300_000, "dt_us": 10_000}
    assert {
        "dvsgesture",
        "cifar10dvs",
        "shd",
        "ntidigits",
        "smnist",
        "psmnist",
        "mnist",
        "cifar10",
        "cifar100",
        "digits",
    } <= set(dataset_names())


def test_unknown_name_lists_the_available_ones(tmp_path):
    with pytest.raises(DatasetError, match="unknown data set 'mnist-dvs'.*ndigits, nmnist"):
        get_datasets("mnist-dvs", tmp_path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dt_us": 0}, "--dt must be a positive integer"),
        ({"dt_us": 400_000}, r"--dt .* at most --time-window \(300000 µs\), got 400000"),
        ({"dt_us": 2.5}, "--dt"),
        ({"time_window_us": -1}, "--time-window must be a positive integer"),
        ({"subset": 0}, "--subset"),
        ({"val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_bad_options_name_the_option(tmp_path, options, message):
    with pytest.raises(DatasetError, match=message):
        get_datasets("ndigits", tmp_path, **options)
    assert not (tmp_path / "N-Digits").exists()  # rejected before any generation


def test_missing_nmnist_is_a_quick_error_naming_the_layout(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"ROOT/Train/<digit>/\*\.bin.*ROOT = .*NMNIST.*garrickorchard"):
        get_datasets("nmnist", tmp_path)
    assert time.perf_counter() - start < 1.0


def test_ndigits_subset_shapes_and_splits(shared_data_dir):
    train, val, test, info = get_datasets("ndigits", shared_data_dir, subset=50)
    assert info == DataInfo(
        name="ndigits",
        input_shape=(2, 34, 34),
        num_classes=10,
        class_names=tuple("0123456789"),
        time_window_us=300_000,
        dt_us=10_000,
        T=30,
        root=str(shared_data_dir / "N-Digits"),
    )
    assert len(train) == len(val) == len(test) == 50
    for ds in (train, val, test):
        np.testing.assert_array_equal(np.bincount(ds.targets, minlength=10), [5] * 10)
        frames, label = ds[0]
        assert frames.shape == (30, 2, 34, 34) and frames.dtype == torch.float32
        assert isinstance(label, int) and label == ds.targets[0]
        assert frames.sum() > 1_000  # a sample's events, binned
    assert not set(train.indices) & set(val.indices)  # train and val come from the same split

    batch, labels = next(iter(DataLoader(train, batch_size=8, collate_fn=collate_time_first)))
    assert batch.shape == (30, 8, 2, 34, 34) and batch.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.tolist() == train.targets[:8].tolist()
    np.testing.assert_array_equal(batch[:, 3], train[3][0])


def test_validation_is_a_stratified_hold_out_chosen_by_seed(shared_data_dir):
    train, val, test, _ = get_datasets("ndigits", shared_data_dir)
    assert (len(train), len(val), len(test)) == (1293, 144, 360)
    all_train = np.bincount(np.concatenate([train.targets, val.targets]), minlength=10)
    assert np.all(np.abs(np.bincount(val.targets, minlength=10) - 0.1 * all_train) <= 1)
    _, val_again, _, _ = get_datasets("ndigits", shared_data_dir)
    _, val_other, _, _ = get_datasets("ndigits", shared_data_dir, seed=1)
    np.testing.assert_array_equal(val.indices, val_again.indices)
    assert set(val.indices) != set(val_other.indices)


def test_dataset_pickles_without_its_memory_map(shared_data_dir):
    train, _, _, _ = get_datasets("ndigits", shared_data_dir, subset=10)
    train[0]  # opens the memory map
    clone = pickle.loads(pickle.dumps(train))
    assert len(pickle.dumps(train)) < 10_000
    torch.testing.assert_close(clone[0][0], train[0][0])


@pytest.mark.parametrize("nested", [True, False])
def test_nmnist_reads_the_native_layout(shared_data_dir, tmp_path, nested):
    root = tmp_path / "NMNIST" if nested else tmp_path
    for split in ("Train", "Test"):
        for digit in range(10):
            dest = root / split / str(digit)
            dest.mkdir(parents=True)
            for f in sorted((shared_data_dir / "N-Digits" / split / str(digit)).glob("*.bin"))[:10]:
                shutil.copy(f, dest / f.name)
    train, val, test, info = get_datasets("nmnist", tmp_path, dt_us=100_000)
    assert (len(train), len(val), len(test)) == (90, 10, 100)
    assert info.root == str(root) and info.T == 3
    assert train[0][0].shape == (3, 2, 34, 34)


def test_augmentation_is_a_function_of_seed_epoch_and_sample(data_dir):
    import torch

    from mambaspike.data import get_datasets

    train, *_ = get_datasets("ndigits", data_dir, subset=20, seed=3, augment=True)
    clean, *_ = get_datasets("ndigits", data_dir, subset=20, seed=3, augment=False)
    rng = torch.get_rng_state()
    a = train[5][0]
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is not touched
    torch.manual_seed(123)
    assert torch.equal(train[5][0], a)  # nor read: the same sample, the same augmentation
    assert not torch.equal(a, clean[5][0])
    train.set_epoch(1)
    assert not torch.equal(train[5][0], a)
    train.set_epoch(0)
    assert torch.equal(train[5][0], a)
