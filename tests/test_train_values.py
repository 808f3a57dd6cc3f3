"""Training values are checked before anything runs: every option and recipe value (types, ranges, choices,
paths, binning, --augment) is one line naming the key, the value and what is accepted, exit 1; and
``--augment`` on N-Digits changes the train samples (shift, event drop) and nothing else."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mambaspike.cli import main
from mambaspike.data import get_datasets, get_entry
from mambaspike.errors import ConfigError
from mambaspike.training.config import TrainConfig, augmentation_applies
from mambaspike.training.recipes import load_recipe

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lr": -1.0}, r"^lr = -1.0: expected a finite number > 0$"),
        ({"lr": float("inf")}, r"^lr = inf: expected a finite number > 0$"),
        ({"epochs": 0}, r"^epochs = 0: expected an integer >= 1$"),
        ({"epochs": 2.5}, r"^epochs = 2.5: expected an integer >= 1$"),
        ({"batch_size": 0}, r"^batch_size = 0: expected an integer >= 1$"),
        ({"batch_size": True}, r"^batch_size = True: expected an integer >= 1$"),
        ({"weight_decay": -0.1}, r"^weight_decay = -0.1: expected a finite number >= 0$"),
        ({"grad_clip": float("nan")}, r"^grad_clip = nan: expected a finite number >= 0$"),
        ({"warmup_epochs": -1}, r"^warmup_epochs = -1: expected a finite number >= 0$"),
        ({"save_every": 0}, r"^save_every = 0: expected an integer >= 1$"),
        ({"subset": 0}, r"^subset = 0: expected an integer >= 1 \(or unset\)$"),
        ({"threads": -2}, r"^threads = -2: expected an integer >= 1 \(or unset\)$"),
        ({"seed": -1}, r"^seed = -1: expected an integer in \[0, 2\*\*32\)$"),
        ({"time_window_us": 0}, r"^time_window_us \(--time-window\) = 0: expected an integer >= 1 \(or unset\)$"),
        ({"dataset": "nope"}, r"^dataset = 'nope': expected one of ndigits, nmnist, "),
        ({"model": "transformer"}, r"^model = 'transformer': expected one of "),
        ({"device": "gpu"}, r"^device = 'gpu': expected auto, cpu, cuda or cuda:N$"),
        ({"augment": "yes"}, r"^augment = 'yes': expected true, false or unset \(the data set's default\)$"),
        ({"model_overrides": [1]}, r"^model_overrides = \[1\]: expected a mapping of model settings$"),
        # between values: the bin within the window (given, or the data set's default window)
        (
            {"time_window_us": 1000, "dt_us": 5000},
            r"^dt_us \(--dt\) = 5000: expected at most time_window_us \(--time-window\) \(1000 µs\)$",
        ),
        (
            {"dt_us": 400_000},
            r"^dt_us \(--dt\) = 400000: expected at most .*\(300000 µs, the default of ndigits\)$",
        ),
        (
            {"dataset": "mnist", "dt_us": 5},
            r"^--time-window/--dt do not apply to mnist: its sample length is fixed \(dt_us \(--dt\) = 5 given",
        ),
        (
            {"dataset": "shd", "augment": True},
            r"^augment \(--augment\): shd defines no augmentation; data sets that do",
        ),
    ],
)
def test_a_bad_value_is_one_error_naming_it(values, message):
    with pytest.raises(ConfigError, match=message) as err:
        TrainConfig(**values).validate()
    assert "\n" not in str(err.value)


def test_paths_that_are_files_are_refused(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    with pytest.raises(ConfigError, match=rf"^data_dir = '{f}': expected a directory path \(not a file\), or unset$"):
        TrainConfig(data_dir=str(f)).validate()
    with pytest.raises(ConfigError, match=r"^output_dir = "):
        TrainConfig(output_dir=str(f)).validate()
    assert TrainConfig(data_dir=str(tmp_path / "not-yet")).validate().data_dir.endswith("not-yet")


def test_the_defaults_are_valid():
    TrainConfig().validate()
    TrainConfig(augment=True).validate()  # N-Digits has an augmentation


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: -1\n", r"r\.yaml: lr = -1: expected a finite number > 0$"),
        ("epochs: 0\n", r"r\.yaml: epochs = 0: expected an integer >= 1$"),
        ("batch_size: 0\n", r"r\.yaml: batch_size = 0: expected an integer >= 1$"),
        ("time_window_us: 1000\ndt_us: 5000\n", r"r\.yaml: dt_us \(--dt\) = 5000: expected at most"),
        ("dataset: ntidigits\naugment: true\n", r"r\.yaml: augment \(--augment\): ntidigits defines no augmentation"),
        ("seed: 4294967296\n", r"r\.yaml: seed = 4294967296: expected an integer in"),
    ],
)
def test_bad_recipe_values_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_recipe(str(path))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data-dir", "FILE"], r"data_dir = '.*a-file': expected a directory path \(not a file\)"),
        (["--dataset", "shd", "--augment"], r"augment \(--augment\): shd defines no augmentation"),
        (["--dataset", "mnist", "--augment"], r"augment \(--augment\): mnist defines no augmentation"),
        (["--time-window", "1000", "--dt", "2000"], r"dt_us \(--dt\) = 2000: expected at most"),
        (["--config", "RECIPE"], r"bad\.yaml: lr = -1: expected a finite number > 0"),
    ],
)
def test_the_cli_refuses_before_anything_runs(tmp_path, capsys, argv, message):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "bad.yaml").write_text("lr: -1\n")
    argv = [{"FILE": str(tmp_path / "a-file"), "RECIPE": str(tmp_path / "bad.yaml")}.get(a, a) for a in argv]
    out = tmp_path / "run"
    code = main(["train", *argv, "--output-dir", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("mambaspike train: error: ")
    assert re.search(message, err[0]), err[0]
    assert not out.exists()  # nothing was written


def test_a_bad_recipe_value_exits_1_at_once_in_a_fresh_process(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("dataset: ndigits\nmodel_overrides:\n  temporal_pool_mode: mean\n")
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "mambaspike", "train", "--config", str(recipe), "--output-dir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=120,
    )
    elapsed = time.perf_counter() - t0
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "model_overrides.temporal_pool_mode = 'mean': expected one of 'max', 'avg'" in lines[0]
    assert not (tmp_path / "o").exists()
    assert elapsed < 60  # the interpreter's and torch's start-up; nothing is loaded or trained


def test_only_data_sets_with_an_augmentation_accept_augment():
    with_aug = {n for n in ("ndigits", "nmnist", "dvsgesture", "cifar10dvs") if augmentation_applies(get_entry(n))}
    assert with_aug == {"ndigits", "nmnist", "dvsgesture", "cifar10dvs"}
    for name in ("shd", "ntidigits", "spoken-digits", "mnist", "cifar10", "digits"):
        assert not augmentation_applies(get_entry(name)), name


def test_augment_on_ndigits_changes_the_train_split_only(data_dir):
    plain = get_datasets("ndigits", data_dir, subset=20)
    torch.manual_seed(0)
    aug = get_datasets("ndigits", data_dir, subset=20, augment=True)
    changed = [not torch.equal(plain[0][i][0], aug[0][i][0]) for i in range(len(plain[0]))]
    assert sum(changed) >= len(changed) // 2  # event drop alone thins almost every sample
    x, x_aug = plain[0][0][0], aug[0][0][0]
    assert x_aug.sum() < x.sum() and x_aug.shape == x.shape  # events were dropped, none added
    for k in (1, 2):  # validation and test are never augmented
        assert all(torch.equal(plain[k][i][0], aug[k][i][0]) for i in range(len(plain[k])))


def test_a_bad_recipe_value_is_refused_before_the_heavy_imports(tmp_path):
    """The one-line error comes before the trainer, the data loaders' libraries and the evaluation
    code are imported (what makes it quick), checked by the modules loaded, not by a clock."""
    import subprocess
    import sys

    recipe = tmp_path / "bad.yaml"
    recipe.write_text("dataset: ndigits\nlr: -1\n")
    code = (
        "import sys\nfrom mambaspike.cli import main\n"
        f"rc = main(['train', '--config', {str(recipe)!r}])\n"
        "heavy = [m for m in ('sklearn', 'scipy', 'tonic', 'mambaspike.training.trainer') if m in sys.modules]\n"
        "print(rc, heavy)\n"
    )
    import os

    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.stdout.strip().splitlines()[-1] == "1 []", r.stdout + r.stderr
    assert "lr = -1: expected a finite number > 0" in r.stderr
