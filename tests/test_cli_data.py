"""`mambaspike datasets`, `train --config` (explicit options win), quick errors for missing data,
and the train-only event augmentation."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mambaspike.cli import main
from mambaspike.data import get_datasets
from mambaspike.data.augment import augment_frames
from mambaspike.data.mnist import encode_idx
from mambaspike.data.registry import Augment, dataset_names


def _write_mnist(root):
    d = root / "MNIST"
    d.mkdir(parents=True)
    for prefix, n in (("train", 20), ("t10k", 10)):
        (d / f"{prefix}-images-idx3-ubyte").write_bytes(encode_idx(np.zeros((n, 28, 28), np.uint8)))
        (d / f"{prefix}-labels-idx1-ubyte").write_bytes(encode_idx((np.arange(n) % 10).astype(np.uint8)))


def test_datasets_lists_every_data_set_with_layout_and_presence(tmp_path, capsys):
    _write_mnist(tmp_path)
    assert main(["datasets", "--data-dir", str(tmp_path), "--json"]) == 0
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert list(rows) == dataset_names()
    assert rows["mnist"]["status"] == "present: 20 train, 10 test samples"
    assert rows["smnist"]["status"].startswith("present")
    assert rows["dvsgesture"]["status"] == "missing" and "ibmGestureTrain" in rows["dvsgesture"]["layout"]
    assert rows["ndigits"]["status"].startswith("not generated")
    assert not (tmp_path / "N-Digits").exists()
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "layout: DATA_DIR/SHD/shd_train.h5" in text and "source: " in text


def test_train_on_missing_dvsgesture_fails_within_seconds_naming_the_layout(tmp_path, capsys):
    start = time.perf_counter()
    assert (
        main(["train", "--dataset", "dvsgesture", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")])
        == 1
    )
    assert time.perf_counter() - start < 5
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ibmGestureTrain/userNN_<lighting>/<label>.npy" in err and "--download" in err
    src = str(Path(__file__).resolve().parents[1] / "src")  # this checkout, whatever is installed
    r = subprocess.run(
        [sys.executable, "-m", "mambaspike", "train", "--dataset", "dvsgesture", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": src},
    )
    assert r.returncode == 1 and "expected DATA_DIR/DVSGesture" in r.stderr


def test_config_is_overridden_by_explicit_options_only(tmp_path, monkeypatch):
    import mambaspike.training.trainer

    seen = {}
    monkeypatch.setattr(mambaspike.training.trainer, "train", lambda cfg, **kw: seen.update(cfg=cfg))
    assert main(["train", "--config", "dvsgesture-mambaspike", "--epochs", "3", "--dt", "50000"]) == 0
    cfg = seen["cfg"]
    assert (cfg.dataset, cfg.model, cfg.batch_size, cfg.lr, cfg.augment) == ("dvsgesture", "mambaspike", 16, 5e-4, True)
    assert cfg.epochs == 3 and cfg.dt_us == 50_000 and cfg.time_window_us == 1_500_000
    assert cfg.model_overrides["tau_ms"] == 30.0
    assert main(["train", "--config", "dvsgesture-gru", "--batch-size", "32"]) == 0  # explicit, equal to the default
    assert seen["cfg"].batch_size == 32 and seen["cfg"].epochs == 150


def test_bad_config_is_one_line_exit_1(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text("dataset: nmnist\nbatch: 3\n")
    assert main(["train", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown key(s) batch" in err


# --- augmentation -------------------------------------------------------------------------------------


def test_augment_shift_flip_and_drop():
    frames = torch.zeros(3, 2, 16, 16)
    frames[:, :, 5:8, 5:8] = 4.0
    torch.manual_seed(0)
    shifted = augment_frames(frames, Augment(max_shift=3))
    assert shifted.sum() == frames.sum()  # content stays on the sensor
    assert all(augment_frames(frames, Augment(flip_x=True)).sum() == frames.sum() for _ in range(4))
    flipped = {augment_frames(frames, Augment(flip_x=True))[0, 0, 5, 8:11].sum().item() for _ in range(20)}
    assert flipped == {0.0, 12.0}  # x -> 15 - x half of the time
    dropped = augment_frames(frames, Augment(drop=0.5))
    assert (dropped <= frames).all() and 0.3 < dropped.sum() / frames.sum() < 0.7
    counts = torch.ones(5, 7) * 10
    assert augment_frames(counts, Augment(max_shift=2, flip_x=True)).equal(counts)  # 1-D: only drop applies


def test_event_augmentation_levels_are_drawn_per_sample_within_their_bounds():
    from mambaspike.data.augment import EVENT_AUGMENT, with_event_augmentation

    base = Augment(max_shift=2, drop=0.1)
    aug = with_event_augmentation(base)
    assert (aug.max_shift, aug.drop) == (2, 0.1) and all(getattr(aug, k) == v for k, v in EVENT_AUGMENT.items())
    frames = torch.zeros(4, 2, 20, 20)
    frames[:, :, 8:12, 8:12] = 5.0
    n = float(frames.sum())
    g = torch.Generator().manual_seed(0)
    # drop only: the kept fraction follows a drop probability drawn in [0.1, 0.5], so it varies by sample
    kept = [float(augment_frames(frames, Augment(drop=0.1, drop_max=0.5), g).sum()) / n for _ in range(40)]
    assert 0.45 < min(kept) and max(kept) < 0.95 and max(kept) - min(kept) > 0.2
    # jitter only: events move (the centre loses counts to its border) but none leave this sensor
    jittered = [augment_frames(frames, Augment(jitter_px=1.0), g) for _ in range(20)]
    assert all(float(j.sum()) == n for j in jittered)
    assert any((j[:, :, 7, 8:12] > 0).any() for j in jittered)
    # background only: between 0 and 1 extra event per event, spread over the whole sensor
    noisy = [augment_frames(frames, Augment(noise_max=1.0), g) for _ in range(40)]
    extra = [float(x.sum()) / n - 1 for x in noisy]
    assert min(extra) >= 0 and max(extra) <= 1 and max(extra) - min(extra) > 0.3
    assert any((x[:, :, :4, :4] > 0).any() for x in noisy)
    # event_p: only that share of the samples is perturbed, the rest are served unchanged
    served = [augment_frames(frames, Augment(noise_max=1.0, event_p=0.5), g) for _ in range(60)]
    clean = sum(bool(x.equal(frames)) for x in served)
    assert 15 < clean < 45
    # the same generator state gives the same augmentation
    a = augment_frames(frames, aug, torch.Generator().manual_seed(7))
    b = augment_frames(frames, aug, torch.Generator().manual_seed(7))
    assert a.equal(b) and not a.equal(frames)


def test_augment_events_is_refused_off_event_data_sets_and_old_records_reuse():
    from mambaspike.errors import ConfigError
    from mambaspike.training.config import TrainConfig
    from mambaspike.training.run import resolved_config

    with pytest.raises(ConfigError, match=r"augment_events \(--augment-events\): mnist is not an event data set"):
        TrainConfig(dataset="mnist", augment_events=True).validate()
    train = {"dataset": "ndigits", "augment": True, "seed": 0}
    model = {"name": "gru"}
    assert resolved_config(train, model, "1") == resolved_config({**train, "augment_events": False}, model, "1")
    assert resolved_config(train, model, "1") != resolved_config({**train, "augment_events": True}, model, "1")


def test_augment_applies_to_the_train_split_only(tmp_path):
    from test_data_formats import _write_cifar10dvs

    _write_cifar10dvs(tmp_path, per_class=10)
    plain = get_datasets("cifar10dvs", tmp_path, time_window_us=300_000, dt_us=100_000, val_fraction=0.5)
    aug = get_datasets("cifar10dvs", tmp_path, time_window_us=300_000, dt_us=100_000, val_fraction=0.5, augment=True)
    torch.manual_seed(0)
    assert not all(torch.equal(plain[0][i][0], aug[0][i][0]) for i in range(len(plain[0])))
    for k in (1, 2):
        assert all(torch.equal(plain[k][i][0], aug[k][i][0]) for i in range(len(plain[k])))


def test_a_recipe_trains_end_to_end_on_fixture_event_data(tmp_path, capsys):
    from test_data_formats import _write_cifar10dvs

    _write_cifar10dvs(tmp_path, per_class=20)
    out = tmp_path / "run"
    argv = [
        "train",
        "--config",
        "cifar10dvs-gru",
        "--data-dir",
        str(tmp_path),
        "--output-dir",
        str(out),
        "--epochs",
        "1",
        "--subset",
        "20",
        "--time-window",
        "300000",
        "--dt",
        "100000",
        "--no-progress",
    ]
    assert main(argv) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["train"]["augment"] is True and run["train"]["batch_size"] == 32 and run["train"]["epochs"] == 1
    assert run["data"]["input_shape"] == [2, 128, 128] and run["data"]["T"] == 3
    assert 0 <= json.loads((out / "metrics.json").read_text())["test_accuracy"] <= 1
