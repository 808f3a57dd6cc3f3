"""The public API: ``import mambaspike as ms``, the README's "Use it from Python" code (executed as
written, on a small N-Digits), typed configs and their one-line errors, logits from every family."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import mambaspike as ms
from mambaspike.cli import main
from mambaspike.errors import ConfigError
from mambaspike.models.config import FAMILIES, ModelConfig
from mambaspike.models.registry import build_model, loss_and_scores, model_names

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = dict(channels=(4, 8), d_model=16, n_layers=1, d_state=4, embed_dim=16, attn_heads=2)
TINY_RUN = dict(
    subset=40,
    epochs=1,
    batch_size=16,
    lr=3e-3,
    progress=False,
    threads=1,
    time_window_us=100000,
    model_overrides=dict(channels=(4, 8, 16), d_model=32, n_layers=1, d_state=8),
)


def readme_python_blocks() -> list[str]:
    """The ```python blocks of the README's "Use it from Python" section, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Use it from Python\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_section_has_its_three_examples():
    blocks = readme_python_blocks()
    assert len(blocks) == 3
    assert 'ms.load_run("outputs/ndigits-mambaspike-seed0")' in blocks[0]
    assert "F.cross_entropy(model(x), y)" in blocks[1] and 'get_datasets("ndigits")' in blocks[1]
    code = [line for line in blocks[1].splitlines() if line.strip() and not line.startswith(("import ", "from "))]
    assert len(code) <= 17  # "a custom training loop on N-Digits in about 15 lines" (imports aside)


@pytest.fixture(scope="module")
def readme_run(data_dir, tmp_path_factory):
    """A tiny trained run where the README looks for it: ``outputs/ndigits-mambaspike-seed0`` under a cwd."""
    from mambaspike.training.trainer import TrainConfig, train

    cwd = tmp_path_factory.mktemp("readme")
    out = cwd / "outputs" / "ndigits-mambaspike-seed0"
    train(TrainConfig(data_dir=str(data_dir), output_dir=str(out), **TINY_RUN), log=lambda *a, **k: None)
    return cwd


def test_readme_snippet_runs_and_loads_the_run(readme_run, data_dir, monkeypatch):
    from mambaspike.data import get_datasets
    from mambaspike.training.checkpoint import load_record

    monkeypatch.chdir(readme_run)
    ns: dict = {}
    exec(compile(readme_python_blocks()[0], "README.md", "exec"), ns)
    run, model, test = ns["run"], ns["model"], ns["test"]
    assert isinstance(ns["lif"], ms.LIF) and ns["lif"].dt == 1.0
    assert run.config.dataset == "ndigits" and run.config.subset == 40 and run.config.epochs == 1
    assert isinstance(model, ms.MambaSpike) and not model.training
    assert next(model.parameters()).device.type == "cpu"
    # the best checkpoint's weights, exactly
    from safetensors.torch import load_file

    ckpt = readme_run / "outputs" / "ndigits-mambaspike-seed0" / "checkpoints"
    saved = load_file(ckpt / load_record(ckpt, "best")["weights"])
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    # the test split the run was trained and evaluated on
    ref = get_datasets("ndigits", data_dir, time_window_us=100000, subset=40, seed=0)[2]
    assert len(test) == len(ref) and torch.equal(test[3][0], ref[3][0]) and test[3][1] == ref[3][1]
    metrics = json.loads((ckpt.parent / "metrics.json").read_text())
    from mambaspike.evaluation.inference import classification_metrics, run_inference

    scores, targets, _ = run_inference(model, test)
    assert classification_metrics(scores, targets)["accuracy"] == metrics["test_accuracy"]
    assert run.model("last", device="cpu").training is False
    with pytest.raises(ConfigError, match="split 'dev'; expected one of train, val, test"):
        run.data("dev")


def test_a_first_release_run_directory_still_loads(readme_run, tmp_path):
    """run.json of the first release carries ``ModelConfig.extra``; it loads (and builds) all the same."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(readme_run / "outputs" / "ndigits-mambaspike-seed0", old)
    record = json.loads((old / "run.json").read_text())
    record["model"]["extra"] = {}
    record["model"]["channels"] = list(record["model"]["channels"])
    (old / "run.json").write_text(json.dumps(record))
    run = ms.load_run(old)
    assert run.model_config.channels == (4, 8, 16)
    assert isinstance(run.model(), ms.MambaSpike)
    with pytest.raises(ConfigError, match="unknown field"):
        ModelConfig.from_dict({**record["model"], "colour": "red"})


def test_readme_training_loop_runs_and_learns_something(data_dir, monkeypatch, capsys):
    """The README's own loop, on 16 samples per split and 100 ms of events (get_datasets shrunk)."""
    import mambaspike.data as data

    real = data.get_datasets
    monkeypatch.setattr(data, "get_datasets", lambda name: real(name, data_dir, time_window_us=100000, subset=16))
    torch.manual_seed(0)
    ns: dict = {}
    exec(compile(readme_python_blocks()[1], "README.md", "exec"), ns)
    assert isinstance(ns["model"], ms.MambaSpike) and torch.isfinite(ns["loss"])
    assert 0 <= ns["correct"] <= len(ns["test_set"]) == 16
    assert re.fullmatch(r"test accuracy \d\.\d{3}\n", capsys.readouterr().out)


def test_readme_spiking_example_runs():
    torch.manual_seed(0)
    ns: dict = {}
    exec(compile(readme_python_blocks()[2], "README.md", "exec"), ns)
    model, x, spikes = ns["model"], ns["x"], ns["spikes"]
    assert spikes.shape == (4, 4, 10) and set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert torch.isfinite(ns["loss"])
    model.eval()  # eval: the rate coding draws from a fixed seed, so both calls see the same input spikes
    assert torch.equal(model(x), model.spike_train(x).sum(0))


# ---- typed configs: one error naming the field, the value and what it accepts -----------------------

MS = dict(input_shape=(2, 34, 34), num_classes=10, dt_ms=5)
SM = dict(input_shape=(1, 8, 8), num_classes=10)
RNN = dict(input_shape=(1,), num_classes=10, dt_ms=1)
BAD = [
    (
        lambda: ms.FrontEndConfig(temporal_pool_mode="mean"),
        "FrontEndConfig.temporal_pool_mode = 'mean'",
        "one of 'max', 'avg'",
    ),
    (
        lambda: ms.FrontEndConfig(channels=(16, 0)),
        "FrontEndConfig.channels = (16, 0)",
        "a non-empty list of integers >= 1",
    ),
    (lambda: ms.FrontEndConfig(channels=()), "FrontEndConfig.channels = ()", "a non-empty list of integers >= 1"),
    (
        lambda: ms.FrontEndConfig(neuron="izhikevich"),
        "FrontEndConfig.neuron = 'izhikevich'",
        "one of 'lif', 'alif', 'synaptic', 'srm'",
    ),
    (lambda: ms.FrontEndConfig(tau_ms=0), "FrontEndConfig.tau_ms = 0", "a finite number > 0 (ms)"),
    (lambda: ms.FrontEndConfig(learn_tau="yes"), "FrontEndConfig.learn_tau = 'yes'", "true or false"),
    (lambda: ms.InterfaceConfig(window=0), "InterfaceConfig.window = 0", "an integer >= 1"),
    (lambda: ms.BackboneConfig(d_model=2.5), "BackboneConfig.d_model = 2.5", "an integer >= 1"),
    (lambda: ms.BackboneConfig(n_layers=True), "BackboneConfig.n_layers = True", "an integer >= 1"),
    (
        lambda: ms.BackboneConfig(scan_backend="gpu"),
        "BackboneConfig.scan_backend = 'gpu'",
        "one of 'reference', 'numba'",
    ),
    (
        lambda: ms.MambaSpikeConfig(**{**MS, "input_shape": (2, 34)}),
        "MambaSpikeConfig.input_shape = (2, 34)",
        "(C, H, W) or (F,) of integers >= 1",
    ),
    (lambda: ms.MambaSpikeConfig(**{**MS, "dt_ms": -1}), "MambaSpikeConfig.dt_ms = -1", "a finite number > 0"),
    (
        lambda: ms.MambaSpikeConfig(**MS, frontend={"neurons": "lif"}),
        "MambaSpikeConfig.frontend: unknown option(s) neurons",
        "accepted: channels, neuron",
    ),
    (lambda: ms.MambaSpikeConfig(**MS, backbone=16), "MambaSpikeConfig.backbone = 16", "a BackboneConfig"),
    (lambda: ms.RNNBaselineConfig(**RNN, kind="rnn"), "RNNBaselineConfig.kind = 'rnn'", "one of 'lstm', 'gru'"),
    (lambda: ms.RNNBaselineConfig(**RNN, hidden=0), "RNNBaselineConfig.hidden = 0", "an integer >= 1 or None"),
    (
        lambda: ms.SpikingMambaConfig(input_shape=(700,), num_classes=20),
        "SpikingMambaConfig.input_shape = (700,)",
        "(C, H, W) of integers >= 1",
    ),
    (
        lambda: ms.SpikingMambaConfig(**SM, pattern="MX"),
        "SpikingMambaConfig.pattern = 'MX'",
        "a non-empty string of 'M', 'T'",
    ),
    (
        lambda: ms.SpikingMambaConfig(**SM, input_encoding="delta"),
        "SpikingMambaConfig.input_encoding = 'delta'",
        "one of 'rate', 'latency', 'direct'",
    ),
    (
        lambda: ms.SpikingMambaConfig(**SM, pattern="MT", attn_heads=3),
        "SpikingMambaConfig.embed_dim = 64",
        "a multiple of attn_heads = 3",
    ),
    (lambda: ModelConfig(temporal_pool_mode="mean"), "ModelConfig.temporal_pool_mode = 'mean'", "one of 'max', 'avg'"),
    (lambda: ModelConfig(readout_pool="sum"), "ModelConfig.readout_pool = 'sum'", "one of 'max', 'avg'"),
    (lambda: ModelConfig(channels=[16, 0]), "ModelConfig.channels = [16, 0]", "a non-empty list of integers >= 1"),
    (
        lambda: ModelConfig(name="transformer"),
        "ModelConfig.name = 'transformer'",
        "one of 'mambaspike', 'mamba', 'lstm', 'gru'",
    ),
    (lambda: ModelConfig(name="gru", rnn_hidden=-3), "ModelConfig.rnn_hidden = -3", "an integer >= 1 or None"),
    (
        lambda: ModelConfig(name="spiking-hybrid", attn_heads=5),
        "ModelConfig(name='spiking-hybrid'): SpikingMambaConfig.embed_dim = 64",
        "attn_heads = 5",
    ),
    (lambda: ModelConfig(name="mambaspike", embed_dim=0), "ModelConfig.embed_dim = 0", "an integer >= 1"),
]


@pytest.mark.parametrize("make,names,accepted", BAD, ids=[b[1] for b in BAD])
def test_a_bad_option_is_one_line_naming_field_value_and_what_is_accepted(make, names, accepted):
    with pytest.raises(ConfigError) as err:
        make()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(names) and accepted in msg, msg


def test_typed_configs_normalise_and_round_trip_through_the_flat_record():
    cfg = ms.MambaSpikeConfig(input_shape=[2, 34, 34], num_classes=10, dt_ms=5, frontend={"channels": [8, 16]})
    assert cfg.input_shape == (2, 34, 34) and cfg.dt_ms == 5.0 and cfg.frontend == ms.FrontEndConfig(channels=(8, 16))
    assert ms.MambaSpikeConfig(**cfg.to_dict()) == cfg
    flat = ModelConfig.from_family(cfg)
    assert flat.name == "mambaspike" and flat.channels == (8, 16) and flat.family_config() == cfg
    for name in model_names():
        typed = ModelConfig(name=name, **SMALL).family_config()
        assert isinstance(typed, FAMILIES[name][0])
        assert ModelConfig.from_family(typed).family_config() == typed
    assert ModelConfig(name="spiking-hybrid").family_config().pattern == "MT"
    assert ModelConfig(name="lstm").family_config().kind == "lstm"
    with pytest.raises(ConfigError, match="ModelConfig\\(name='gru'\\) is not a MambaSpikeConfig"):
        ms.MambaSpike(ModelConfig(name="gru"))


@pytest.mark.parametrize("name", model_names())
def test_cross_entropy_on_the_logits_of_every_family(name):
    """``F.cross_entropy(model(x), y)`` in anyone's loop: every family returns ``[B, classes]`` logits,
    built from the flat record or from its typed config (the same parameters either way)."""
    torch.manual_seed(0)
    flat = ModelConfig(name=name, input_shape=(2, 16, 16), num_classes=5, dt_ms=5.0, **SMALL)
    model = build_model(flat)
    typed = build_model(flat.family_config())
    assert type(typed) is type(model)
    assert {k: v.shape for k, v in typed.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    x, y = (torch.rand(6, 3, 2, 16, 16) < 0.2).float(), torch.tensor([0, 3, 4])
    logits = model(x)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    loss = F.cross_entropy(logits, y)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    harness_loss, scores = loss_and_scores(model, x, y)
    assert scores.shape == (3, 5) and torch.isfinite(harness_loss)


def test_public_names_resolve_and_import_lazily():
    for name in ms.__all__:
        assert getattr(ms, name) is not None, name
    assert set(ms.__all__) <= set(dir(ms)) and "neurons" in dir(ms)
    assert ms.SpikingMamba.__name__ == "SpikingMamba" and ms.__version__ == ms._version.__version__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = ms.nope
    harness = ("mambaspike.training", "mambaspike.models", "mambaspike.evaluation", "mambaspike.cli", "mambaspike.data")
    code = (
        "import sys, mambaspike.neurons, mambaspike as ms; ms.LIF; "
        f"loaded = [m for m in sys.modules if m.startswith({harness!r})]; assert not loaded, loaded"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)


# ---- the harness refuses a bad model option before anything runs --------------------------------------


@pytest.mark.parametrize(
    "overrides,says",
    [
        ("temporal_pool_mode: mean", "model_overrides.temporal_pool_mode = 'mean': expected one of 'max', 'avg'"),
        ("channels: [16, 0]", "model_overrides.channels = [16, 0]: expected a non-empty list of integers >= 1"),
        ("window: 0", "model_overrides.window = 0: expected an integer >= 1"),
    ],
)
def test_cli_train_with_a_bad_recipe_value_exits_1_with_one_line(tmp_path, capsys, overrides, says):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(f"dataset: ndigits\nmodel: mambaspike\nmodel_overrides:\n  {overrides}\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(recipe), "--output-dir", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{recipe}: {says}" in err, err
    assert not out.exists()


def test_train_refuses_a_bad_override_before_touching_data_or_output(tmp_path, monkeypatch):
    """What ``compare``/``ablate --model-config`` pass: checked before the data set is even opened."""
    import mambaspike.data as data
    from mambaspike.training.trainer import TrainConfig, train

    monkeypatch.setattr(data, "get_datasets", lambda *a, **k: pytest.fail("data loaded before the check"))
    out = tmp_path / "run"
    cases = [
        ({"window": 0}, "model_overrides.window = 0"),
        ({"d_modle": 64}, "model_overrides: unknown key(s) d_modle"),
        ({"input_shape": (1,)}, "input_shape are set by the data set"),
    ]
    for overrides, says in cases:
        with pytest.raises(ConfigError, match=re.escape(says)):
            train(TrainConfig(output_dir=str(out), model_overrides=overrides, progress=False))
    assert not out.exists()
