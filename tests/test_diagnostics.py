"""Training diagnostics: neuron health, gradient norms per stage, the per-epoch record and its report."""

import json

import pytest
import torch
from torch import nn

from mambaspike.cli import main
from mambaspike.evaluation.diagnostics import GradientNorms, neuron_health, read_diagnostics, stage_of
from mambaspike.neurons.modules import LIF


def test_stage_of_groups_parameters_by_block():
    assert stage_of("frontend.blocks.0.conv.weight") == "frontend.blocks.0"
    assert stage_of("backbone.layers.1.mixer.in_proj.weight") == "backbone.layers.1"
    assert stage_of("interface.proj.weight") == "interface"
    assert stage_of("head.norm.bias") == "head"


class _TwoLayers(nn.Module):
    """Two LIF layers fed by a fixed gain each: 0 -> every neuron dead, 50 -> every neuron saturated."""

    def __init__(self, gain_a: float, gain_b: float):
        super().__init__()
        self.gains = (gain_a, gain_b)
        self.a = LIF(tau=20.0, dt=1.0, learn_tau=False)
        self.b = LIF(tau=20.0, dt=1.0, learn_tau=False)

    def forward(self, x):
        sa, _ = self.a(x * self.gains[0])
        sb, _ = self.b(x * self.gains[1])
        return sa.sum() + sb.sum()


def test_neuron_health_finds_dead_and_saturated_layers():
    x = torch.ones(10, 2, 6)  # (T, B, N)
    rows = {r["layer"]: r for r in neuron_health(_TwoLayers(0.0, 50.0).train(), x)}
    assert rows["a"]["dead"] == 1.0 and rows["a"]["firing_rate"] == 0.0 and rows["a"]["saturated"] == 0.0
    assert rows["b"]["dead"] == 0.0 and rows["b"]["saturated"] == 1.0 and rows["b"]["firing_rate"] > 0.9
    assert rows["a"]["neurons"] == 6


def test_neuron_health_restores_training_mode_and_is_empty_without_neurons():
    m = _TwoLayers(1.0, 1.0).train()
    neuron_health(m, torch.ones(3, 1, 2))
    assert m.training
    assert neuron_health(nn.Linear(2, 2), torch.ones(1, 2)) == []


def test_gradient_norms_per_stage_match_a_direct_computation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model(torch.randn(5, 3)).pow(2).sum().backward()
    sq = GradientNorms(model).squares()
    assert set(sq) == {"0", "2"}
    direct = model[0].weight.grad.pow(2).sum() + model[0].bias.grad.pow(2).sum()
    assert sq["0"] == pytest.approx(float(direct), rel=1e-6) and sq["0"] > 0
    sums = GradientNorms.add(GradientNorms.add({}, sq), sq)
    assert GradientNorms.rms(sums, 2)["2"] == pytest.approx(sq["2"] ** 0.5, rel=1e-9)


@pytest.fixture(scope="module")
def diag_run(data_dir, tmp_path_factory):
    from mambaspike.training.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("diag") / "run"
    cfg = TrainConfig(
        data_dir=str(data_dir),
        output_dir=str(out),
        subset=40,
        epochs=2,
        batch_size=16,
        lr=3e-3,
        progress=False,
        threads=1,
        time_window_us=100000,
        model_overrides=dict(channels=(4, 8, 16), d_model=32, n_layers=1, d_state=8),
    )
    train(cfg, log=lambda *a, **k: None)
    return out


def test_training_writes_one_diagnostics_line_per_epoch(diag_run):
    rows = read_diagnostics(diag_run)
    assert [r["epoch"] for r in rows] == [1, 2]
    stages = set(rows[0]["grad_rms"])
    assert {"frontend.blocks.0", "frontend.blocks.2", "interface", "backbone.layers.0", "head"} <= stages
    assert all(v > 0 for r in rows for v in r["grad_rms"].values())  # every stage learns
    layers = [n["layer"] for n in rows[-1]["neurons"]]
    assert layers == ["frontend.blocks.0.lif", "frontend.blocks.1.lif", "frontend.blocks.2.lif"]
    assert all(0.0 <= n["dead"] <= 1.0 and 0.0 <= n["firing_rate"] <= 1.0 for n in rows[-1]["neurons"])


def test_eval_analyze_training_writes_the_table_and_plot(diag_run, tmp_path, capsys):
    args = ["eval", "--checkpoint", str(diag_run), "--output-dir", str(tmp_path), "--latency-repeats", "1"]
    assert main([*args, "--analyze-training", "--output", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "| epoch | train acc | val acc | gap | grad backbone |" in out and "grad frontend.blocks.0" in out
    assert "frontend.blocks.0.lif" in (tmp_path / "training_analysis.md").read_text()
    assert (tmp_path / "training_analysis.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "m.json").read_text())["training_analysis"]
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2] and saved["has_diagnostics"]


def test_representation_sensitivity_is_zero_at_level_zero_and_grows_with_the_drop():
    from mambaspike.evaluation.diagnostics import representation_sensitivity
    from mambaspike.models.config import ModelConfig
    from mambaspike.models.registry import build_model

    torch.manual_seed(0)
    # BatchNorm in the first block, pinned: a per-sample norm (current_norm=running) undoes the drop's rescaling
    shape = dict(input_shape=(2, 16, 16), channels=(4, 8), d_model=16, n_layers=1, d_state=4, spatial_out=2)
    model = build_model(ModelConfig(current_norm="batch", **shape))
    for m in model.modules():  # eval statistics that keep neurons firing
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(3.0)
            m.bias.data.fill_(0.5)
    g = torch.Generator().manual_seed(0)
    samples = [torch.poisson(torch.full((12, 2, 16, 16), 0.4), generator=g) for _ in range(4)]
    rows = representation_sensitivity(model, samples, "event_drop", [0.0, 0.5], dt_ms=5.0)
    at = {(r["level"], r["stage"]): r for r in rows}
    assert at[(0.0, "front")]["rel_change"] == 0.0 and at[(0.0, "interface")]["cosine"] == pytest.approx(1.0)
    assert at[(0.5, "front")]["rel_change"] > 0.05
    assert at[(0.0, "frontend.blocks.0.lif")]["rate_ratio"] == 1.0
    assert at[(0.5, "frontend.blocks.0.lif")]["rate_ratio"] < 1.0  # half the events: fewer spikes
