"""Our synaptic-operation counts, footprint and activation sparsity against NeuroBench's: on a small
model, and through the adapter (``mambaspike.evaluation.neurobench``) on a trained Mamba-Spike run.

NeuroBench is a test-only dependency (requirements-nodeps.txt, installed with --no-deps by .ci/run).
"""

import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mambaspike.evaluation import neurobench as nbadapter
from mambaspike.evaluation.energy import OpCounter, footprint_bytes

pytest.importorskip("snntorch")
Benchmark = pytest.importorskip("neurobench.benchmarks").Benchmark
TorchModel = pytest.importorskip("neurobench.models").TorchModel
from neurobench.metrics.static import Footprint  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity, ActivationSparsityByLayer, SynapticOperations  # noqa: E402


class Small(nn.Module):
    """Binary spikes [B, 1, 6, 6] -> conv (fed spikes: ACs) -> ReLU -> linear (fed reals: MACs) -> a
    second linear fed thresholded (binary) activations -> logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc1 = nn.Linear(3 * 36, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.conv(x)).flatten(1)
        h = self.fc1(h)
        return self.fc2((h > 0).float())


def test_synaptic_operations_and_footprint_match_neurobench():
    torch.manual_seed(0)
    net = Small().eval()
    with torch.no_grad():
        net.fc1.weight[:, :20] = 0  # zero weights: skipped by effective counts, included in Dense
    x = (torch.rand(10, 1, 6, 6) < 0.3).float()
    y = torch.zeros(10, dtype=torch.long)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)

    bench = Benchmark(TorchModel(net), loader, [], [], [[Footprint], [SynapticOperations]])
    theirs = bench.run(quiet=True)

    with torch.no_grad(), OpCounter(net, time_first=False) as counter:
        for xb, _ in loader:
            net(xb)
    ours = counter.report()["total"]
    nb = theirs["SynapticOperations"]
    assert ours["synops_effective_acs"] > 0 and ours["synops_effective_macs"] > 0
    assert ours["synops_effective_acs"] == pytest.approx(nb["Effective_ACs"])
    assert ours["synops_effective_macs"] == pytest.approx(nb["Effective_MACs"])
    assert ours["synops_dense"] == pytest.approx(nb["Dense"])
    assert footprint_bytes(net) == theirs["Footprint"]


@pytest.fixture(scope="module")
def trained_run(data_dir, tmp_path_factory):
    """A Mamba-Spike run trained by the project's trainer on N-Digits (small, but it learns and spikes)."""
    from mambaspike.training.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("neurobench") / "run"
    cfg = TrainConfig(
        data_dir=str(data_dir),
        output_dir=str(out),
        subset=120,
        epochs=3,
        batch_size=8,
        lr=5e-3,
        time_window_us=100_000,
        progress=False,
        threads=1,
        model_overrides={"channels": (4, 8, 16), "d_model": 32, "n_layers": 1, "d_state": 8},
    )
    train(cfg, log=lambda *a, **k: None)
    return out


def test_neurobench_benchmark_of_a_trained_run_reports_what_eval_reports(trained_run, tmp_path):
    from mambaspike.evaluation.report import evaluate_checkpoint
    from mambaspike.training.run import load_run

    ours = evaluate_checkpoint(trained_run, out_dir=tmp_path, latency_repeats=1)  # what `mambaspike eval` writes
    run = load_run(trained_run)
    model, test_set = run.model(), run.data("test")
    theirs = nbadapter.neurobench_benchmark(model, test_set, batch_size=16)

    sparsity = ours["neurobench"]["activation_sparsity"]
    assert 0.5 < sparsity < 0.999  # the model spikes, sparsely
    assert theirs["ActivationSparsity"] == pytest.approx(sparsity, abs=0.01)
    assert theirs["ActivationSparsity"] == pytest.approx(sparsity, rel=1e-9)  # same neurons, same definition
    assert theirs["Footprint"] == ours["neurobench"]["footprint_bytes"]
    for key, value in ours["neurobench"]["synaptic_operations"].items():
        assert theirs["SynapticOperations"][key] == pytest.approx(value), key
    assert ours["neurobench"]["synaptic_operations"]["Effective_ACs"] > 0
    assert theirs["ClassificationAccuracy"] == pytest.approx(ours["test_accuracy"])
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())  # hooks removed


def test_without_the_adapter_neurobench_sees_no_activation_in_our_model(trained_run):
    from mambaspike.training.run import load_run

    run = load_run(trained_run)
    model, test_set = run.model(), run.data("test")
    loader = DataLoader(torch.utils.data.Subset(test_set, range(16)), batch_size=8)
    assert TorchModel(model).activation_layers() == []  # NeuroBench alone finds no activation: sparsity 0.0

    adapted = nbadapter.neurobench_model(model)
    names = [a["layer_name"] for a in adapted.activation_layers()]
    assert names == ["frontend.blocks.0.lif", "frontend.blocks.1.lif", "frontend.blocks.2.lif"]
    bench = Benchmark(adapted, loader, [], [], [[], [ActivationSparsity, ActivationSparsityByLayer]])
    with torch.no_grad():
        res = bench.run(quiet=True)
    adapted.cleanup_hooks()
    by_layer = res["ActivationSparsityByLayer"]
    assert sorted(by_layer) == names and all(0.0 < v < 1.0 for v in by_layer.values())
    assert min(by_layer.values()) <= res["ActivationSparsity"] <= max(by_layer.values())


def test_missing_neurobench_is_one_error_saying_how_to_install_it(monkeypatch):
    monkeypatch.setattr(nbadapter, "_CLASSES", {})
    for name in [m for m in sys.modules if m == "neurobench" or m.startswith("neurobench.")]:
        monkeypatch.setitem(sys.modules, name, None)  # an import of it now fails as if it were not installed
    hint = r"NeuroBench is not installed .*pip install --no-deps -r requirements-nodeps\.txt"
    with pytest.raises(ImportError, match=hint):
        nbadapter.neurobench_model(nn.Linear(2, 2))
