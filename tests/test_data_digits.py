import numpy as np
import pytest
import torch

from mambaspike.data import DatasetError, collate_time_first, dataset_names, get_datasets


def test_digits_is_registered_and_static():
    assert "digits" in dataset_names()
    train, val, test, info = get_datasets("digits")
    assert (len(train), len(val), len(test)) == (1212, 135, 450)  # 1,797 = 75 % (90 / 10) + 25 %
    assert info.input_shape == (1, 8, 8) and info.num_classes == 10 and info.T == 1
    x, y = train[0]
    assert x.dtype == torch.float32 and x.shape == (1, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert isinstance(y, int)
    xb, yb = collate_time_first([train[i] for i in range(5)])
    assert xb.shape == (1, 5, 1, 8, 8) and yb.shape == (5,)


def test_digits_splits_are_disjoint_stratified_and_seeded():
    train, val, test, _ = get_datasets("digits", seed=0)
    # the test split does not depend on the seed; the validation hold-out does
    _, val1, test1, _ = get_datasets("digits", seed=1)
    assert np.array_equal(test.indices, test1.indices) and not np.array_equal(val.indices, val1.indices)
    assert len(train) + len(val) + len(test) == 1797
    for ds in (train, val, test):
        counts = np.bincount(ds.targets, minlength=10)
        assert counts.min() >= 0.8 * counts.mean()
    sub_train, sub_val, _, _ = get_datasets("digits", subset=50)
    assert len(sub_train) == 50 and np.bincount(sub_train.targets).tolist() == [5] * 10


@pytest.mark.parametrize("option", ["time_window_us", "dt_us"])
def test_binning_options_are_refused_for_static_images(option):
    with pytest.raises(DatasetError, match="--time-window/--dt do not apply to digits"):
        get_datasets("digits", **{option: 5000})
    # the nominal single step that a saved run records is accepted (eval / resume repeat it)
    assert get_datasets("digits", **{option: 1000})[3].dt_us == 1000
    with pytest.raises(DatasetError, match="--subset must be a positive integer"):
        get_datasets("digits", subset=0)
