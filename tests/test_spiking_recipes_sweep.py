from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from mambaspike.cli import main
from mambaspike.lab.sweep import PAPER_GRID, SweepRow, composition, run_sweep
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model, count_parameters
from mambaspike.training.recipes import load_recipe
from mambaspike.training.trainer import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SPIKING_RECIPES = sorted(CONFIGS.glob("spiking-*.yaml"))
SHAPES = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}


def recipe_model(path: Path):
    recipe = load_recipe(str(path))
    shape, classes = SHAPES[recipe["dataset"]]
    return recipe, build_model(
        ModelConfig(name=recipe["model"], input_shape=shape, num_classes=classes, **recipe["model_overrides"])
    )


def test_recipes_use_known_fields():
    assert {p.name for p in SPIKING_RECIPES} >= {
        "spiking-mamba-digits.yaml",
        "spiking-mamba-mnist.yaml",
        "spiking-mamba-cifar10.yaml",
        "spiking-hybrid-cifar10.yaml",
        "spiking-mamba-cifar100.yaml",
    }
    train_fields = {f.name for f in fields(TrainConfig)}
    model_fields = {f.name for f in fields(ModelConfig)}
    for path in SPIKING_RECIPES:
        recipe = yaml.safe_load(path.read_text())
        assert set(recipe) - {"model_overrides"} <= train_fields, path.name
        assert set(recipe["model_overrides"]) <= model_fields, path.name
        assert recipe["model"] in ("spiking-mamba", "spiking-hybrid"), path.name


@pytest.mark.parametrize("name", ["spiking-mamba-cifar10.yaml", "spiking-hybrid-cifar10.yaml"])
def test_cifar10_recipe_models_have_the_papers_size(name):
    """Table 2: 3.80M parameters for both 4x Mamba and 3x Mamba + 1x Transformer."""
    recipe, model = recipe_model(CONFIGS / name)
    assert recipe["model_overrides"]["pattern"] in ("MMMM", "MMMT")
    assert 3.5e6 <= count_parameters(model) <= 4.1e6


def test_sweep_grid_is_the_papers_table():
    assert len(PAPER_GRID) == 11 and len(set(PAPER_GRID)) == 11
    assert PAPER_GRID[0] == SweepRow(8, 10, 2, "MM", 32) and PAPER_GRID[-1].pattern == "MT"
    assert composition("MT") == "Mamba + Transformer"


def test_sweep_on_a_tiny_grid_writes_its_tables(tmp_path):
    rows = run_sweep(
        "digits", tmp_path, grid="tiny", epochs=1, batch_size=64, embed_dim=8, subset=40, log=lambda _: None
    )
    assert len(rows) == 3 and all(r["params"] > 0 and 0 <= r["test_accuracy"] <= 1 for r in rows)
    csv_lines = (tmp_path / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].startswith("run,params,channels,time_steps") and len(csv_lines) == 4
    md = (tmp_path / "sweep.md").read_text()
    assert "| run | params |" in md and "Mamba" in md and "Transformer" in md
    assert (tmp_path / rows[0]["run"] / "metrics.json").is_file()


def test_cli_amp_is_refused_without_a_gpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    rc = main(
        ["train", "--model", "spiking-mamba", "--dataset", "digits", "--amp", "--output-dir", str(tmp_path / "r")]
    )
    assert rc == 1 and "--amp: bf16 mixed precision needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_digits_refuses_binning_options(tmp_path, capsys):
    rc = main(
        [
            "train",
            "--model",
            "spiking-mamba",
            "--dataset",
            "digits",
            "--dt",
            "2000",
            "--output-dir",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 1 and "--time-window/--dt do not apply to digits" in capsys.readouterr().err


def test_cli_sweep_and_models(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--help"])
    assert e.value.code == 0 and "--grid" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "spiking-mamba" in help_text and "spiking-hybrid" in help_text and "--amp" in help_text
