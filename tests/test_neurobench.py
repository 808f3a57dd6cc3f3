"""Our synaptic-operation counts and footprint against NeuroBench's on a small model.

NeuroBench is a test-only dependency (requirements-neurobench.txt, installed with --no-deps by .ci/run).
"""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mambaspike.evaluation.energy import OpCounter, footprint_bytes

pytest.importorskip("snntorch")
Benchmark = pytest.importorskip("neurobench.benchmarks").Benchmark
TorchModel = pytest.importorskip("neurobench.models").TorchModel
from neurobench.metrics.static import Footprint  # noqa: E402
from neurobench.metrics.workload import SynapticOperations  # noqa: E402


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
