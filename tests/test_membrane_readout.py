"""The front-end's membrane readout (``readout="membrane"``): the last block's neurons are non-spiking
leaky integrators whose potential the interface reads. The integrator against its closed form (outputs,
final state and gradients), the front-end's wiring, streaming, validation and export."""

import pytest
import torch

from mambaspike.errors import ConfigError, ExportError
from mambaspike.evaluation.energy import OpCounter
from mambaspike.layers.frontend import SpikingFrontEnd
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model
from mambaspike.neurons import LeakyIntegrator, SpikingNeuron

SMALL = dict(input_shape=(2, 12, 12), channels=(4, 8, 8), d_model=16, n_layers=1, spatial_out=2)


def _closed_form(x: torch.Tensor, beta: torch.Tensor, decay_input: bool) -> torch.Tensor:
    """``v_t = sum_{k <= t} beta^(t-k) * g * x_k`` (``g = 1 - beta`` with ``decay_input``), float64."""
    T = x.shape[0]
    t = torch.arange(T, dtype=torch.float64)
    lag = t[:, None] - t[None, :]  # (t, k)
    kernel = torch.where(lag >= 0, beta.double() ** lag.clamp(min=0), torch.zeros((), dtype=torch.float64))
    g = (1 - beta.double()) if decay_input else torch.ones((), dtype=torch.float64)
    return torch.einsum("tk,k...->t...", kernel, x.double()) * g


@pytest.mark.parametrize("decay_input", [True, False])
def test_integrator_matches_its_closed_form_in_values_state_and_gradients(decay_input):
    torch.manual_seed(0)
    li = LeakyIntegrator(tau=20.0, dt=5.0, decay_input=decay_input).double()
    x = torch.randn(13, 3, 4, dtype=torch.float64, requires_grad=True)
    v, v_last = li(x)
    ref = _closed_form(x, li.beta, decay_input)
    torch.testing.assert_close(v, ref)
    torch.testing.assert_close(v_last, ref[-1])
    w = torch.randn_like(ref)
    gx, gw = torch.autograd.grad((v * w).sum(), (x, li.w))
    rx, rw = torch.autograd.grad((ref * w).sum(), (x, li.w))
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)
    assert float(gw.abs()) > 0


def test_integrator_continues_across_chunks_and_steps():
    li = LeakyIntegrator(tau=30.0, dt=10.0)
    x = torch.randn(9, 2, 5)
    full, last = li(x)
    a, s = li(x[:4])
    b, s = li(x[4:], s)
    torch.testing.assert_close(torch.cat([a, b]), full)
    state, steps = None, []
    for xt in x:
        y, state = li.step(xt, state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps), full)
    torch.testing.assert_close(state, last)
    assert not isinstance(li, SpikingNeuron)  # spike counters must not read potentials as spikes


@pytest.mark.parametrize("shape", [(2, 12, 12), (3,)])
def test_membrane_readout_wiring(shape, firing):
    model = firing(build_model(ModelConfig(**{**SMALL, "input_shape": shape}, readout="membrane")))
    blocks = model.frontend.blocks
    assert isinstance(blocks[-1].lif, LeakyIntegrator) and blocks[-1].recurrent is None
    assert blocks[-2].recurrent is not None  # the recurrence moves to the last spiking block
    assert all(isinstance(b.lif, SpikingNeuron) for b in blocks[:-1])
    assert blocks[-1].lif.tau == pytest.approx(30.0, rel=1e-5)
    default = build_model(ModelConfig(**{**SMALL, "input_shape": shape}))
    assert default.frontend.blocks[-1].recurrent is not None and default.frontend.blocks[-2].recurrent is None
    x = (torch.rand(10, 2, *shape) < 0.3).float() * 2
    out, _ = model.frontend(x)
    assert not bool(((out == 0) | (out == 1)).all())  # potentials, not spikes
    model(x).sum().backward()
    assert float(blocks[-1].lif.w.grad.abs()) > 0 and float(blocks[0].conv.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("shape", [(2, 12, 12), (3,)])
def test_membrane_readout_streams_exactly(shape, firing):
    torch.manual_seed(0)
    model = firing(build_model(ModelConfig(**{**SMALL, "input_shape": shape}, readout="membrane"))).eval()
    x = (torch.rand(19, 2, *shape) < 0.3).float() * 3
    with torch.no_grad():
        full = model(x)
        ref, _ = model.frontend.forward_reference(x)
        out, _ = model.frontend(x)
    torch.testing.assert_close(out, ref)
    assert (model.stream(x) - full).abs().max() <= 1e-5


def test_the_energy_estimate_counts_the_readouts_output_as_real_valued(firing):
    model = firing(build_model(ModelConfig(**SMALL, readout="membrane"))).eval()
    x = (torch.rand(10, 2, *SMALL["input_shape"]) < 0.3).float()
    with OpCounter(model) as ops, torch.no_grad():
        model(x)
    assert ops.layers["frontend.blocks.2.conv"].input == "spikes"  # fed by block 1's spikes
    assert ops.layers["interface.proj"].input == "real"


def test_bad_readouts_are_named():
    with pytest.raises(ConfigError, match=r"readout.*'spikes', 'membrane'"):
        ModelConfig(readout="potential")
    with pytest.raises(ConfigError, match=r"readout = 'membrane'.*at least two blocks"):
        ModelConfig(readout="membrane", channels=(16,))
    with pytest.raises(ValueError, match="at least two blocks"):
        SpikingFrontEnd(2, (8,), readout="membrane")


def test_records_without_the_field_are_spiking_readouts():
    from mambaspike.training.run import config_hash, resolved_config

    now = ModelConfig().to_dict()
    older = {k: v for k, v in now.items() if k != "readout"}
    assert ModelConfig.from_dict(older).readout == "spikes"
    train = {"dataset": "ndigits", "epochs": 12}
    assert config_hash(resolved_config(train, older, "v")) == config_hash(resolved_config(train, now, "v"))


def test_nir_export_names_the_membrane_readout():
    pytest.importorskip("nir")
    from mambaspike.export.nir import frontend_to_nir

    fe = SpikingFrontEnd(2, (4, 8), temporal_pool=1, neuron="lif", readout="membrane").eval()
    with pytest.raises(ExportError, match=r"block 1 is the membrane readout.*--blocks 0:1"):
        frontend_to_nir(fe, (2, 16, 16))
    graph, _ = frontend_to_nir(fe, (2, 16, 16), blocks=(0, 1))
    assert "block0_lif" in graph.nodes


def test_the_named_variant_is_the_membrane_readout_max_pooled(tmp_path):
    from mambaspike.models.config import VARIANTS
    from mambaspike.training.run import run_label

    family, overrides = VARIANTS["mambaspike-membrane"]
    model = build_model(ModelConfig(name=family, **SMALL, **overrides))
    last = model.frontend.blocks[-1]
    assert isinstance(last.lif, LeakyIntegrator) and isinstance(last.pool, torch.nn.AdaptiveMaxPool2d)
    assert run_label(tmp_path / "ndigits-mambaspike-membrane-seed0", "mambaspike") == "mambaspike-membrane"
    paper = ModelConfig(**VARIANTS["mambaspike-paper"][1])
    assert paper.readout == "spikes" and paper.readout_pool == "max"
