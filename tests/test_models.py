import pytest
import torch

from mambaspike.errors import ConfigError
from mambaspike.evaluation.inference import SpikeCounter
from mambaspike.layers.frontend import SpikingFrontEnd
from mambaspike.layers.interface import SpikeInterface, window_sum
from mambaspike.layers.pooling import temporal_pool
from mambaspike.models.baselines import matched_hidden, rnn_params
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model, count_parameters, model_names
from mambaspike.neurons.modules import SpikingNeuron


@pytest.mark.parametrize("name", model_names())
def test_forward_shapes_of_every_registered_model(name):
    torch.manual_seed(0)
    cfg = ModelConfig(name=name, input_shape=(2, 34, 34), num_classes=10, dt_ms=5.0)
    model = build_model(cfg)
    x = (torch.rand(12, 3, 2, 34, 34) < 0.05).float()
    logits = model(x)
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert 50_000 < count_parameters(model) < 5_000_000


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="ModelConfig.name = 'transformer': expected one of 'mambaspike', 'mamba'"):
        build_model(ModelConfig(name="transformer"))


def test_frontend_emits_binary_spikes_and_pools_time():
    torch.manual_seed(0)
    fe = SpikingFrontEnd(2, (4, 8), dt_ms=5.0, temporal_pool=2, spatial_out=3)
    x = (torch.rand(9, 2, 2, 16, 16) < 0.2).float() * 3
    s, states = fe(x)
    assert s.shape == (5, 2, 8, 3, 3)
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    # neurons after the temporal pool see bins twice as wide, with the same tau in ms
    assert fe.blocks[0].lif.dt == 5.0 and fe.blocks[1].lif.dt == 10.0
    assert fe.blocks[1].lif.tau == pytest.approx(fe.blocks[0].lif.tau, rel=1e-5)
    assert len(states) == 2 and isinstance(states[1], tuple)  # the last block is recurrent


def test_temporal_pool_max_and_avg():
    x = torch.tensor([0.0, 1, 0, 0, 1]).view(5, 1)
    assert temporal_pool(x, 2, "max").view(-1).tolist() == [1, 0, 1]
    assert temporal_pool(x, 2, "avg").view(-1).tolist() == [0.5, 0, 1]


@pytest.mark.parametrize("T, k", [(8, 2), (9, 2), (7, 3), (4, 1)])
@pytest.mark.parametrize("binary", [True, False])
def test_temporal_max_pool_fast_backward_matches_amax(T, k, binary):
    """The max pool's cheaper backward gives amax's values and gradients (ties split evenly: binary
    spikes tie all the time), the padded last window included; double precision gradcheck too."""
    g = torch.Generator().manual_seed(T * 10 + k)
    x = torch.rand(T, 3, 4, 5, 5, generator=g)
    x = (x < 0.3).double() if binary else (x * 4).round().double()  # rounded: real-valued ties
    grad = torch.randn(-(-T // k), 3, 4, 5, 5, generator=g, dtype=torch.float64)
    outs, grads = [], []
    for reference in (True, False):
        xr = x.clone().requires_grad_()
        y = temporal_pool(xr, k, "max", reference=reference)
        y.backward(grad)
        outs.append(y.detach())
        grads.append(xr.grad)
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])
    xs = torch.rand(T, 2, 3, generator=g, dtype=torch.float64).requires_grad_()  # no ties: smooth
    assert torch.autograd.gradcheck(lambda v: temporal_pool(v, k, "max"), (xs,))
    with torch.no_grad():  # no gradient needed: amax itself
        assert torch.equal(temporal_pool(x, k, "max"), outs[0])


def test_window_sum_and_rate_normalisation():
    x = torch.tensor([1.0, 1, 0, 1, 1]).view(5, 1, 1)
    sums, bins = window_sum(x, 2)
    assert sums.view(-1).tolist() == [2, 1, 1] and bins.tolist() == [2, 2, 1]
    iface = SpikeInterface(in_features=1, d_model=4, window=2, bin_ms=10.0)
    rates = iface.rates(x.view(5, 1, 1, 1, 1))  # training mode: batch mean rate = (1 + .5 + 1) / 3
    assert rates.view(-1).tolist() == pytest.approx([1 / (2.5 / 3), 0.5 / (2.5 / 3), 1 / (2.5 / 3)])
    iface.eval()
    assert iface(x.view(5, 1, 1, 1, 1)).shape == (1, 3, 4)


def test_rate_floor_bounds_the_gain_of_a_rarely_firing_feature():
    x = torch.zeros(4, 1, 2, 1, 1)
    x[:, 0, 0] = 1.0  # feature 0 fires every bin; feature 1 never fired in training
    for floor, gain in ((0.01, 100.0), (0.25, 4.0)):
        iface = SpikeInterface(in_features=2, d_model=4, window=2, bin_ms=10.0, momentum=1.0, min_rate=floor)
        iface.rates(x)  # training: the running rate becomes the batch's, (1, 0)
        iface.eval()
        noisy = x.clone()
        noisy[:, 0, 1] = 1.0  # feature 1 now fires every bin (e.g. background events)
        assert iface.rates(noisy)[0, 0].tolist() == pytest.approx([1.0, gain])
    model = build_model(ModelConfig(name="mambaspike", input_shape=(2, 16, 16), channels=(4, 8), rate_floor=0.2))
    assert model.interface.min_rate == 0.2


def test_rnn_baselines_are_parameter_matched():
    h = matched_hidden("lstm", 128, 2, 230_000)
    assert abs(rnn_params("lstm", 128, h, 2) - 230_000) / 230_000 < 0.02
    params = {n: count_parameters(build_model(ModelConfig(name=n))) for n in ("mamba", "lstm", "gru")}
    assert max(params.values()) / min(params.values()) < 1.05


def test_spike_counter_counts_every_lif_call():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mambaspike", channels=(4, 8), d_model=16, n_layers=1)).eval()
    x = (torch.rand(6, 2, 2, 34, 34) < 0.3).float() * 4
    seen = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append(float(o[0].sum())))
        for m in model.modules()
        if isinstance(m, SpikingNeuron)
    ]
    with SpikeCounter(model) as counter, torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert counter.total == pytest.approx(sum(seen)) and counter.total > 0
    with SpikeCounter(build_model(ModelConfig(name="gru"))) as c:
        assert not c.spiking
