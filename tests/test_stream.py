"""Streaming (one bin at a time) against the full-sequence forward, and 1-D input shapes."""

import pytest
import torch

from mambaspike.errors import ConfigError
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model
from mambaspike.neurons.modules import SpikingNeuron
from mambaspike.ssm.mamba import MambaBackbone, MambaBlock, MambaConfig

STREAMING = ["mambaspike", "mamba", "lstm", "gru"]  # the Mamba-Spike family and its baselines stream

SMALL = dict(channels=(8, 16), d_model=32, n_layers=2, spatial_out=2)


def _spiky_input(T, B, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, *shape, generator=g) < 0.3).float() * 3


def _eval_model(name, shape, **kw):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, input_shape=shape, **{**SMALL, **kw})).eval()
    g = torch.Generator().manual_seed(1)
    for m in model.modules():  # eval statistics that keep neurons firing
        if hasattr(m, "running_rate"):
            m.running_rate.fill_(0.2)
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.weight.data.fill_(3.0)
            m.bias.data = torch.rand(m.bias.shape, generator=g) * 6 - 1
    return model


def test_mamba_block_step_matches_forward():
    torch.manual_seed(0)
    block = MambaBlock(MambaConfig(d_model=16))
    x = torch.randn(2, 11, 16)
    y, (conv, ssm) = block(x)
    state, ys = None, []
    for x_t in x.unbind(1):
        y_t, state = block.step(x_t, state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state[0], conv)
    torch.testing.assert_close(state[1], ssm, atol=1e-5, rtol=1e-5)


def test_backbone_step_continues_a_forward_chunk():
    torch.manual_seed(0)
    bb = MambaBackbone(MambaConfig(d_model=16, n_layers=2))
    x = torch.randn(2, 9, 16)
    y, _ = bb(x)
    y1, state = bb(x[:, :5])
    ys = [y1]
    for x_t in x[:, 5:].unbind(1):
        y_t, state = bb.step(x_t, state)
        ys.append(y_t[:, None])
    torch.testing.assert_close(torch.cat(ys, 1), y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", STREAMING)
@pytest.mark.parametrize("shape,T", [((2, 34, 34), 23), ((1,), 37), ((3,), 16)])
def test_stream_equals_full_forward(name, shape, T):
    """T not a multiple of temporal_pool * window: the last incomplete windows are flushed."""
    model = _eval_model(name, shape)
    x = _spiky_input(T, 3, shape)
    with torch.no_grad():
        full = model(x)
    assert (model.stream(x) - full).abs().max() <= 1e-5


def test_stream_equals_full_forward_with_an_average_readout():
    model = _eval_model("mambaspike", (2, 34, 34), readout_pool="avg")
    x = _spiky_input(23, 3, (2, 34, 34))
    spikes, _ = model.frontend(x)
    assert ((spikes > 0) & (spikes < 1)).any()  # mean spike counts per region reach the interface
    with torch.no_grad():
        full = model(x)
    assert (model.stream(x) - full).abs().max() <= 1e-5


def test_stream_emits_logits_per_window_and_finish_keeps_state():
    model = _eval_model("mambaspike", (1,))
    x = _spiky_input(20, 2, (1,))
    every = model.cfg.frontend.temporal_pool * model.cfg.interface.window
    state, emitted = None, 0
    with torch.no_grad():
        for t, x_t in enumerate(x.unbind(0)):
            logits, state = model.step(x_t, state)
            if logits is not None:
                emitted += 1
                assert (t + 1) % every == 0
                # the prefix so far, through the full forward
                assert (logits - model(x[: t + 1])).abs().max() <= 1e-5
            if t == 9:
                model.finish(state)  # must not disturb the stream
        assert (model.finish(state) - model(x)).abs().max() <= 1e-5
    assert emitted == 20 // every


@pytest.mark.parametrize("shape", [(2, 34, 34), (1,), (3,)])
def test_stream_frontend_really_spikes(shape):
    model = _eval_model("mambaspike", shape)
    seen = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: seen.append(o[0].mean().item()))
        for m in model.modules()
        if isinstance(m, SpikingNeuron)
    ]
    model.stream(_spiky_input(12, 2, shape))
    for h in hooks:
        h.remove()
    rate = sum(seen) / len(seen)
    assert 0.02 < rate < 0.9, rate  # the equality tests above see real spike trains


def test_stream_state_does_not_grow():
    model = _eval_model("mambaspike", (1,))
    x = _spiky_input(64, 1, (1,))

    def numel(s):
        if isinstance(s, torch.Tensor):
            return s.numel()
        if isinstance(s, (tuple, list)):
            return sum(numel(v) for v in s)
        return 0

    state, sizes = None, []
    with torch.no_grad():
        for x_t in x.unbind(0):
            _, state = model.step(x_t, state)
            sizes.append(numel(state))
    assert max(sizes[8:]) == max(sizes[:8])  # bounded by one window's worth


def test_stream_needs_eval_mode():
    model = build_model(ModelConfig(name="mambaspike", input_shape=(1,), **SMALL))
    with pytest.raises(ConfigError, match="eval mode"):
        model.step(torch.zeros(1, 1))


@pytest.mark.parametrize("name", STREAMING)
@pytest.mark.parametrize("shape", [(1,), (5,)])
def test_forward_shapes_for_1d_input(name, shape):
    model = build_model(ModelConfig(name=name, input_shape=shape, num_classes=7, **SMALL))
    x = torch.rand(13, 4, *shape)
    out = model(x)
    assert out.shape == (4, 7)
    out.sum().backward()  # trains


def test_sequential_mnist_shape():
    model = build_model(ModelConfig(name="mambaspike", input_shape=(1,), **SMALL))
    assert model(torch.rand(784, 2, 1)).shape == (2, 10)


def test_bad_input_shape_names_the_field():
    with pytest.raises(ConfigError, match="input_shape"):
        build_model(ModelConfig(name="mambaspike", input_shape=(3, 4)))


def test_running_input_norm_streams_exactly_and_undoes_a_uniform_scaling():
    from mambaspike.layers.input_norm import RunningCountNorm

    norm = RunningCountNorm().eval()
    x = _spiky_input(9, 3, (2, 5, 5))
    y, state = norm(x)
    y1, s1 = norm(x[:4])
    y2, s2 = norm(x[4:], s1)
    torch.testing.assert_close(torch.cat([y1, y2]), y)
    torch.testing.assert_close(s2[0], state[0])
    # a sample with every count halved (half the events, on average) is brought back towards its scale
    half, _ = norm(x * 0.5)
    assert (half.mean() / y.mean()).item() > 0.6  # without the normalisation: 0.5
    model = _eval_model("mambaspike", (2, 34, 34), input_norm="running")
    x = _spiky_input(23, 3, (2, 34, 34))
    with torch.no_grad():
        full = model(x)
    assert (model.stream(x) - full).abs().max() <= 1e-5


def test_running_input_norm_tracks_the_training_rate_and_has_gradients():
    from mambaspike.layers.input_norm import RunningCountNorm

    norm = RunningCountNorm(momentum=1.0).train()
    x = torch.full((4, 2, 3), 0.2, requires_grad=True)
    y, _ = norm(x)
    assert norm.rate.item() == pytest.approx(0.2)
    y.sum().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="prior_bins must be > 0"):
        RunningCountNorm(prior_bins=0)
