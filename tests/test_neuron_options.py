"""The front-end's neuron options (``learn_threshold``, ``soft_reset``, ``detach_reset``, ``surrogate``,
``surrogate_alpha``): they reach every block's neurons, are validated by name, train the same through the
compiled kernels as through the reference loops, stream exactly, and leave older records comparable."""

import copy

import pytest
import torch

from mambaspike.errors import ConfigError
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model
from mambaspike.neurons.modules import SpikingNeuron
from mambaspike.neurons.surrogate import ATan, Sigmoid, Triangle

SMALL = dict(input_shape=(2, 12, 12), channels=(4, 8, 8), d_model=16, n_layers=1, spatial_out=2)
OPTIONS = dict(learn_threshold=True, soft_reset=True, detach_reset=True, surrogate="sigmoid", surrogate_alpha=8.0)


def _neurons(model):
    return [m for m in model.modules() if isinstance(m, SpikingNeuron)]


def test_defaults_are_the_neurons_of_earlier_releases():
    neurons = _neurons(build_model(ModelConfig(**SMALL)))
    assert len(neurons) == 3
    for n in neurons:
        assert type(n.spike_fn) is ATan and float(n.spike_fn.alpha) == 2.0
        assert not n.soft_reset and not n.detach_reset
        assert not isinstance(n.v_threshold, torch.nn.Parameter)


@pytest.mark.parametrize("neuron", ["alif", "lif", "synaptic"])
def test_options_reach_every_block(neuron):
    model = build_model(ModelConfig(neuron=neuron, **SMALL, **OPTIONS))
    for n in _neurons(model):
        assert type(n.spike_fn) is Sigmoid and float(n.spike_fn.alpha) == 8.0
        assert n.soft_reset and n.detach_reset
        assert isinstance(n.v_threshold, torch.nn.Parameter)
    names = {k for k, _ in model.named_parameters()}
    assert {f"frontend.blocks.{i}.lif.v_threshold" for i in range(3)} <= names


def test_srm_takes_detach_reset_and_refuses_a_soft_reset_by_name():
    srm = _neurons(build_model(ModelConfig(neuron="srm", detach_reset=True, surrogate="triangle", **SMALL)))
    assert all(n.detach_reset and type(n.spike_fn) is Triangle for n in srm)
    with pytest.raises(ConfigError, match=r"soft_reset = true: an 'srm' neuron has no reset"):
        ModelConfig(neuron="srm", soft_reset=True)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("surrogate", "relu", r"surrogate.*one of 'atan', 'sigmoid', 'fast-sigmoid', 'triangle'"),
        ("surrogate_alpha", 0.0, r"surrogate_alpha.*> 0"),
        ("soft_reset", "yes", r"soft_reset.*true or false"),
    ],
)
def test_bad_values_name_the_field(field, value, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**{field: value})


@pytest.mark.parametrize("neuron", ["alif", "lif"])
def test_compiled_training_step_matches_the_reference_loops(neuron):
    """Logits, input gradients and every parameter's gradient (thresholds and time constants included)
    of a training step through the compiled neuron kernels equal those of the reference loops."""
    torch.manual_seed(0)
    fast = build_model(ModelConfig(neuron=neuron, **SMALL, **OPTIONS)).train()
    ref = copy.deepcopy(fast)
    for n in _neurons(fast):
        n.backend = "numba"  # an error, not a fallback, where the kernel cannot run this call
    for n in _neurons(ref):
        n.backend = "reference"
    x = (torch.rand(16, 3, *SMALL["input_shape"]) < 0.3) * 2.0
    outs = []
    for model in (fast, ref):
        xi = x.detach().clone().requires_grad_()
        logits = model(xi)
        logits.square().sum().backward()
        outs.append((logits, xi.grad, {k: p.grad for k, p in model.named_parameters()}))
    (lf, gf, pf), (lr, gr, pr) = outs
    torch.testing.assert_close(lf, lr, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(gf, gr, atol=1e-5, rtol=1e-4)
    assert pf.keys() == pr.keys()
    for k in pf:
        torch.testing.assert_close(pf[k], pr[k], atol=1e-5, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
    assert all(float(pf[f"frontend.blocks.{i}.lif.v_threshold"].abs()) > 0 for i in range(3))


@pytest.mark.parametrize("shape", [(2, 12, 12), (3,)])
def test_a_soft_reset_front_end_streams_exactly(shape):
    torch.manual_seed(0)
    cfg = {**SMALL, "input_shape": shape, "soft_reset": True, "surrogate": "triangle"}
    model = build_model(ModelConfig(**cfg)).eval()
    for m in model.modules():  # eval statistics that keep neurons firing
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.weight.data.fill_(3.0)
            m.bias.data.fill_(1.5)
    x = (torch.rand(19, 2, *shape) < 0.3).float() * 3
    with torch.no_grad():
        full = model(x)
        spikes, _ = model.frontend(x)
    assert spikes.sum() > 0
    assert (model.stream(x) - full).abs().max() <= 1e-5


def test_records_from_before_the_options_compare_with_the_neurons_they_were_trained_with():
    from mambaspike.training.run import config_hash, resolved_config

    now = ModelConfig().to_dict()
    older = {k: v for k, v in now.items() if k not in OPTIONS}
    assert ModelConfig.from_dict(older) == ModelConfig()
    train = {"dataset": "ndigits", "epochs": 12}
    assert config_hash(resolved_config(train, older, "v")) == config_hash(resolved_config(train, now, "v"))
    changed = {**now, "soft_reset": True}
    assert config_hash(resolved_config(train, changed, "v")) != config_hash(resolved_config(train, now, "v"))
