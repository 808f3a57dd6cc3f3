"""Operation counts and the energy estimate on hand-checked tiny models, and spike/firing-rate counting."""

import pytest
import torch
from torch import nn

from mambaspike.evaluation.activity import ActivityMonitor
from mambaspike.evaluation.energy import PJ_PER_AC, PJ_PER_MAC, OpCounter, footprint_bytes, is_binary
from mambaspike.neurons.modules import LIF, SpikingNeuron


class TimeFirstLinear(nn.Module):
    """[T, B, F] -> linear per bin -> [B, out] (sum over time)."""

    def __init__(self, f_in=4, f_out=3):
        super().__init__()
        self.fc = nn.Linear(f_in, f_out, bias=True)

    def forward(self, x):
        return self.fc(x).sum(0)


def test_linear_fed_spikes_counts_one_ac_per_spike_and_weight():
    m = TimeFirstLinear(4, 3)
    x = torch.zeros(2, 1, 4)  # T=2, B=1
    x[0, 0, 1] = 1
    x[1, 0, 0] = x[1, 0, 3] = 1  # 3 spikes
    with OpCounter(m) as c:
        m(x)
    rep = c.report()
    (row,) = rep["layers"]
    assert row["input"] == "spikes" and row["macs"] == 0
    assert row["acs"] == 3 * 3  # 3 spikes x 3 output neurons
    assert row["dense_acs"] == 2 * 4 * 3  # 2 bins x 4 inputs x 3 outputs
    assert row["energy_pj"] == pytest.approx(9 * PJ_PER_AC)
    assert rep["samples"] == 1


def test_linear_fed_reals_counts_dense_macs():
    m = TimeFirstLinear(4, 3)
    x = torch.zeros(2, 2, 4)
    x[0, 0, 1] = 0.5  # real-valued and mostly zero: effective 1 x 3, dense 2 x 2 x 4 x 3
    with OpCounter(m) as c:
        m(x)
    (row,) = c.report()["layers"]
    assert row["input"] == "real" and row["acs"] == 0
    assert row["macs"] == 2 * 4 * 3  # per sample (B=2): 2 bins x 4 x 3
    assert row["effective_macs"] == pytest.approx(3 / 2)
    assert row["energy_pj"] == pytest.approx(24 * PJ_PER_MAC)


def test_zero_weights_are_skipped_by_effective_counts():
    m = TimeFirstLinear(2, 2)
    with torch.no_grad():
        m.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))  # one non-zero weight, on input 0
    x = torch.ones(1, 1, 2)
    with OpCounter(m) as c:
        m(x)
    (row,) = c.report()["layers"]
    assert row["acs"] == 1 and row["dense_acs"] == 4


def test_conv_counts_exclude_zero_padding():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):  # [T, B, 1, 3, 3]
            return self.conv(x.flatten(0, 1)).sum()

    x = torch.zeros(1, 1, 1, 3, 3)
    x[0, 0, 0, 1, 1] = 1  # the centre pixel reaches all 9 outputs
    with OpCounter(M()) as c:
        c.model(x)
    (row,) = c.report()["layers"]
    # dense: each output sums over its in-bounds neighbours: 4 corners x 4 + 4 edges x 6 + centre 9 = 49
    assert row["dense_acs"] == 49 and row["acs"] == 9


def test_rnn_layers_are_counted_analytically_as_macs():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(5, 7, batch_first=True)

        def forward(self, x):  # [T, B, 5]
            return self.rnn(x.transpose(0, 1))[0]

    with OpCounter(M()) as c:
        c.model(torch.randn(4, 2, 5))
    (row,) = c.report()["layers"]
    assert row["macs"] == 4 * 3 * 7 * (5 + 7)  # per sample: 4 steps x 3 gates x hidden x (in + hidden)


def test_is_binary():
    assert is_binary(torch.tensor([0.0, 1.0, 1.0])) and not is_binary(torch.tensor([0.0, 2.0]))
    assert not is_binary(torch.tensor([0.5]))


def test_footprint_counts_parameters_and_buffers():
    m = nn.BatchNorm1d(3)  # weight, bias (params), running mean/var (float), num_batches_tracked (int64)
    assert footprint_bytes(m) == 4 * 3 * 4 + 8


class TwoLIF(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = LIF(tau=2.0, dt=1.0, learn_tau=False)
        self.b = LIF(tau=2.0, dt=1.0, learn_tau=False)

    def forward(self, x):  # [T, B, F]
        s, _ = self.a(x)
        out = []
        v = None
        for t in s.unbind(0):  # b is stepped bin by bin, like a recurrent block
            st, v = self.b(t[None] * 10, v)
            out.append(st)
        return torch.cat(out).sum(0)


def test_activity_monitor_counts_spikes_rates_and_time_course():
    m = TwoLIF()
    x = torch.zeros(4, 2, 3)
    x[:, 0, 0] = 10.0  # one neuron of sample 0 driven hard: h = 5 > 1 every bin -> spikes every bin
    with ActivityMonitor(m) as act:
        m(x)
        m(x)
    assert issubclass(LIF, SpikingNeuron) and act.samples == 4
    rates = {r["layer"]: r for r in act.layer_rates()}
    assert rates["a"]["spikes_per_sample"] == pytest.approx(4 / 2)  # 4 spikes per pass, 2 samples
    assert rates["a"]["firing_rate"] == pytest.approx(4 / (4 * 2 * 3))
    assert rates["b"]["neurons"] == 3
    over_time = act.rates_over_time()
    assert len(over_time["b"]) == 4  # stepped one bin at a time, still 4 bins
    assert over_time["a"] == pytest.approx([1 / 6] * 4)
    assert act.spikes_per_sample() == pytest.approx(sum(r["spikes_per_sample"] for r in rates.values()))
    total_spikes = sum(act.spikes.values())  # over both passes
    assert act.activation_sparsity() == pytest.approx(1 - total_spikes / (2 * 2 * (4 * 2 * 3)))  # 2 layers, 2 passes


def test_op_counter_on_mambaspike_marks_spike_fed_layers():
    from mambaspike.models.config import ModelConfig
    from mambaspike.models.registry import build_model

    torch.manual_seed(0)
    m = build_model(
        ModelConfig(input_shape=(2, 16, 16), channels=(4, 8), d_model=16, n_layers=1, d_state=4, v_threshold=0.05)
    )
    m.eval()
    with torch.no_grad(), OpCounter(m) as c:
        m(torch.poisson(torch.full((6, 2, 2, 16, 16), 0.3)) * 3)
    kinds = {r["layer"]: r["input"] for r in c.report()["layers"]}
    assert kinds["frontend.blocks.0.conv"] == "real"  # event counts up to 3x, not binary
    assert kinds["frontend.blocks.1.conv"] == "spikes"
    assert kinds["frontend.blocks.1.recurrent"] == "spikes"
    assert kinds["backbone.layers.0.mixer.in_proj"] == "real"


def test_op_counter_sees_every_layer_despite_fused_inference_paths():
    """The fused inference kernels (dense front-end, Mamba conv1d/dt_proj) bypass module calls; with
    an OpCounter's hooks in place the models take their module-by-module paths, so counts under
    no_grad equal those of a forward that records a graph (which never fuses)."""
    from mambaspike.models.config import ModelConfig
    from mambaspike.models.registry import build_model

    torch.manual_seed(0)
    m = build_model(
        ModelConfig(input_shape=(1,), dt_ms=1.0, channels=(4, 8), d_model=16, n_layers=2, d_state=4, v_threshold=0.05)
    )
    m.eval()
    x = torch.rand(40, 2, 1) * 3
    with torch.no_grad(), OpCounter(m) as fused:
        m(x)
    with OpCounter(m) as graph:
        m(x)
    rows = {r["layer"]: r for r in fused.report()["layers"]}
    assert {"backbone.layers.1.mixer.conv1d", "backbone.layers.1.mixer.dt_proj", "frontend.blocks.1.recurrent"} <= set(
        rows
    )
    assert rows == {r["layer"]: r for r in graph.report()["layers"]}
