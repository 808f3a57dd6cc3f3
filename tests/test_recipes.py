"""Every recipe in configs/ parses, validates, builds its model (<= 5M parameters) and trains one
step on fixture-shaped data; bad recipes give a clear error naming the key."""

import pytest
import torch

from mambaspike.data import dataset_defaults, get_entry
from mambaspike.data.frames import num_bins
from mambaspike.errors import ConfigError
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model, count_parameters, loss_and_scores
from mambaspike.training.recipes import load_recipe, recipe_paths

# One time step of each data set as binned (sensor sizes of the real data).
INPUT_SHAPES = {
    "ndigits": (2, 34, 34),
    "nmnist": (2, 34, 34),
    "dvsgesture": (2, 128, 128),
    "dvs-motion": (2, 128, 128),
    "dvs-motion-32": (2, 32, 32),
    "cifar10dvs": (2, 128, 128),
    "shd": (700,),
    "ntidigits": (64,),
    "tidigits": (64,),
    "spoken-digits": (64,),
    "smnist": (1,),
    "psmnist": (1,),
    "smnist-rate": (1, 28, 28),
    "mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
    "digits": (1, 8, 8),
}


def test_there_is_a_recipe_per_data_set_and_model():
    names = {p.stem for p in recipe_paths()}
    for dataset in (
        "nmnist",
        "dvsgesture",
        "dvs-motion",
        "dvs-motion-32",
        "cifar10dvs",
        "shd",
        "ntidigits",
        "tidigits",
        "spoken-digits",
        "smnist",
        "psmnist",
        "mnist",
        "cifar10",
        "cifar100",
    ):
        for model in ("mambaspike", "mamba", "lstm", "gru"):
            assert f"{dataset}-{model}" in names


@pytest.mark.parametrize("path", recipe_paths(), ids=lambda p: p.stem)
def test_recipe_builds_and_trains_one_step(path):
    recipe = load_recipe(str(path))
    assert path.read_text().count("Expected GPU time") == 1
    entry = get_entry(recipe["dataset"])
    binning = {**dataset_defaults(entry.name), **{k: recipe[k] for k in ("time_window_us", "dt_us") if k in recipe}}
    T = 784 if entry.name in ("smnist", "psmnist") else 1 if entry.fixed_binning else num_bins(**binning)
    shape = INPUT_SHAPES[entry.name]
    cfg = ModelConfig(
        name=recipe["model"],
        input_shape=shape,
        num_classes=len(entry.class_names),
        dt_ms=binning["dt_us"] / 1000,
        **recipe["model_overrides"],
    )
    model = build_model(cfg)
    x = torch.rand(min(T, 64), 2, *shape)  # fixture batch (T capped: one step is about shapes)
    torch.manual_seed(0)
    loss, scores = loss_and_scores(model, x, torch.tensor([0, 1]))
    assert count_parameters(model) <= 5_000_000
    assert scores.shape == (2, len(entry.class_names))
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    torch.optim.AdamW(model.parameters(), lr=recipe["lr"]).step()
    assert torch.isfinite(loss)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dataset: dvsgesture\nepoch: 3\n", "unknown key.*epoch"),
        ("dataset: nope\n", "dataset 'nope' unknown"),
        ("lr: 5e-4\n", "lr must be float, got '5e-4'"),
        ("epochs: 2.5\n", "epochs must be int"),
        ("model_overrides:\n  d_modle: 3\n", "unknown model_overrides key.*d_modle"),
        ("model_overrides:\n  input_shape: [1]\n", "unknown model_overrides key.*input_shape"),
        ("model_overrides:\n  d_modle: 3\n", r"d_modle \(closest: d_model"),
        ("model_overrides:\n  d_model: wide\n", "model_overrides.d_model = 'wide': expected an integer >= 1"),
        (
            "model_overrides:\n  channels: [16, 3.5]\n",
            r"model_overrides.channels = \[16, 3.5\]: expected a non-empty list of integers >= 1",
        ),
        ("- a\n- b\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_recipes_name_the_key(tmp_path, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_recipe(str(path))


def test_missing_recipe_is_an_error():
    with pytest.raises(ConfigError, match="--config nope: no such file"):
        load_recipe("nope")


def test_the_paper_recipe_is_the_paper_variant():
    from mambaspike.models.config import PAPER_FRONTEND

    overrides = load_recipe("ndigits-mambaspike-paper")["model_overrides"]
    assert {k: overrides.get(k) for k in PAPER_FRONTEND} == PAPER_FRONTEND
