"""``--augment-set`` / ``TrainConfig.augment_set``: fields of a data set's augmentation replaced for one
run; checked with one-line errors; recorded in the run's resolved configuration (so a run with another
augmentation is not reused) and applied again where the run's data are rebuilt."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
import torch

from mambaspike.cli import main
from mambaspike.data import get_datasets, get_entry
from mambaspike.data.augment import augment_frames
from mambaspike.errors import ConfigError
from mambaspike.models.config import ModelConfig
from mambaspike.training.config import TrainConfig
from mambaspike.training.run import config_hash, resolved_config

SET = {"drop_max": 0.5, "jitter_px": 1.0}


def test_the_fields_replace_the_data_sets_augmentation(data_dir):
    base = get_entry("ndigits").augment
    train, *_ = get_datasets("ndigits", data_dir, subset=20, seed=3, augment=True, augment_set=SET)
    plain, *_ = get_datasets("ndigits", data_dir, subset=20, seed=3, augment=True)
    clean, *_ = get_datasets("ndigits", data_dir, subset=20, seed=3, augment=False)
    assert train.augment == replace(base, **SET) and plain.augment == base
    # the sample is the clean one through augment_frames with the replaced fields, drawn as the data set draws
    g = torch.Generator().manual_seed(((3 * 1_000_003 + 0) * 1_000_033 + 4) % 2**63)
    assert torch.equal(train[4][0], augment_frames(clean[4][0], replace(base, **SET), g))
    assert not torch.equal(train[4][0], plain[4][0])
    with pytest.raises(ConfigError, match="--augment-set|augment_set"):
        get_datasets("ndigits", data_dir, subset=20, augment=True, augment_set={"jitter": 1})


def test_bad_settings_are_refused_in_one_line(tmp_path):
    cases = [
        ({"jitterpx": 1}, "unknown field 'jitterpx'; accepted: max_shift, flip_x, drop, drop_max, jitter_px"),
        ({"drop_max": 1.5}, "drop_max = 1.5: expected a probability in [0, 1)"),
        ({"max_shift": 1.5}, "max_shift = 1.5: expected an integer >= 0 (pixels)"),
        ({"flip_x": 1}, "flip_x = 1: expected true or false"),
    ]
    for values, message in cases:
        with pytest.raises(ConfigError) as e:
            TrainConfig(augment_set=values).validate()
        assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="which is off for ndigits"):
        TrainConfig(augment=False, augment_set={"jitter_px": 1.0}).validate()
    with pytest.raises(ConfigError, match="which is off for spoken-digits"):
        TrainConfig(dataset="spoken-digits", augment_set={"jitter_px": 1.0}).validate()
    assert TrainConfig(augment_set=dict(SET)).validate().augment_set == SET


def test_cli_parses_yaml_values_and_names_a_bad_pair(capsys, tmp_path):
    out = str(tmp_path / "run")
    assert main(["train", "--augment-set", "jitter_px", "--output-dir", out]) == 1
    assert "--augment-set jitter_px: expected KEY=VALUE" in capsys.readouterr().err
    assert main(["compare", "--augment-set", "jitter_px=x", "--output-dir", out]) == 1
    assert "--augment-set: jitter_px = 'x': expected a number >= 0 (pixels)" in capsys.readouterr().err


def test_the_resolved_configuration_holds_the_replaced_augmentation():
    model = ModelConfig(name="mamba").to_dict()
    train = {"dataset": "ndigits", "epochs": 12, "augment": True}
    with_set = resolved_config({**train, "augment_set": SET}, model, "v")
    assert with_set["augmentation"] == asdict(replace(get_entry("ndigits").augment, **SET))
    assert config_hash(with_set) != config_hash(resolved_config(train, model, "v"))


def test_a_run_records_and_rebuilds_its_augmentation(data_dir, tmp_path):
    import mambaspike as ms

    out = tmp_path / "run"
    argv = ["train", "--data-dir", str(data_dir), "--subset", "20", "--epochs", "1", "--batch-size", "10"]
    argv += ["--time-window", "50000", "--threads", "1", "--no-progress", "--output-dir", str(out)]
    argv += ["--set", "channels=[4,8,16]", "--set", "d_model=16", "--set", "n_layers=1"]
    argv += ["--augment-set", "drop_max=0.5", "--augment-set", "jitter_px=1.0"]
    assert main(argv) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["train"]["augment_set"] == SET
    assert record["resolved"]["augmentation"]["jitter_px"] == 1.0
    train, *_ = ms.load_run(out).datasets(augment=True)
    assert train.augment == replace(get_entry("ndigits").augment, **SET)
