"""The first block's current norm: BatchNorm (the paper's) or each sample's own (``current_norm="sample"``)."""

import pytest
import torch

from mambaspike.errors import ConfigError, ExportError
from mambaspike.layers import frontend_fused
from mambaspike.layers.blocks import RunningSampleNorm, SpikingConvBlock, SpikingDenseBlock, current_norm
from mambaspike.layers.frontend import SpikingFrontEnd
from mambaspike.models import ModelConfig, build_model

LIF_KW = dict(tau=20.0, dt=5.0, v_threshold=0.5, learn_tau=True)


def _counts(T, B, shape, seed=0, rate=0.2):
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((T, B, *shape), rate), generator=g)


def _trained_stats(block, x):
    """BatchNorm with running statistics of ``x`` (a forward in training mode), then eval."""
    block.train()
    with torch.no_grad():
        block.bn.momentum = 1.0
        block(x)
    return block.eval()


@pytest.mark.parametrize("neuron", ["lif", "alif"])
def test_sample_norm_makes_a_conv_block_invariant_to_rescaled_counts(neuron):
    torch.manual_seed(0)
    x = _counts(6, 3, (2, 12, 12))
    sample = SpikingConvBlock(2, 8, LIF_KW, neuron=neuron, norm="sample").eval()
    batch = _trained_stats(SpikingConvBlock(2, 8, LIF_KW, neuron=neuron, norm="batch"), x)
    with torch.no_grad():
        cur = lambda b, y: b.bn(b.conv(y.flatten(0, 1)))  # noqa: E731
        torch.testing.assert_close(cur(sample, 0.5 * x), cur(sample, x), atol=2e-3, rtol=1e-3)
        assert (cur(batch, 0.5 * x) - cur(batch, x)).abs().max() > 0.1  # BatchNorm passes the scaling on
        s_full, _ = sample(x)
        s_half, _ = sample(0.5 * x)
        b_full, _ = batch(x)
        b_half, _ = batch(0.5 * x)
    assert s_full.sum() > 0
    assert (s_full != s_half).float().mean() < 1e-3
    assert (b_full != b_half).float().mean() > 10 * max((s_full != s_half).float().mean().item(), 1e-4)


def test_sample_norm_removes_a_uniform_offset_per_channel():
    block = SpikingConvBlock(2, 4, LIF_KW, norm="sample").eval()
    x = _counts(3, 2, (2, 10, 10))
    with torch.no_grad():
        a = block.bn(block.conv(x.flatten(0, 1)))
        # a constant added to every pixel of the input shifts each channel's current by one constant
        # away from the border: the norm removes it there
        b = block.bn(block.conv((x + 0.7).flatten(0, 1)))
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    diff = (b - a)[inner]
    assert diff.std().item() < 0.35 * (a[inner].std().item())


def test_sample_norm_uses_no_batch_statistics():
    torch.manual_seed(0)
    block = SpikingConvBlock(2, 4, LIF_KW, norm="sample").train()
    x = _counts(4, 3, (2, 8, 8))
    other = x.clone()
    other[:, 1:] = _counts(4, 2, (2, 8, 8), seed=5, rate=1.0)
    s1, v1 = block(x)
    s2, v2 = block(other)
    torch.testing.assert_close(s1[:, 0], s2[:, 0])
    torch.testing.assert_close(v1[0], v2[0])  # final potentials [B, C, H, W]
    block.eval()
    s3, _ = block(x)
    torch.testing.assert_close(s3, s1)  # the same in training and eval


def test_dense_block_sample_norm_normalises_over_the_features():
    block = SpikingDenseBlock(5, 7, LIF_KW, norm="sample")
    assert isinstance(block.bn, torch.nn.GroupNorm) and block.bn.num_groups == 1
    x = torch.rand(4, 2, 5)
    with torch.no_grad():
        torch.testing.assert_close(block.bn(block.conv(3 * x[0])), block.bn(block.conv(x[0])), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown current norm 'layer'; available: batch, sample"):
        current_norm("layer", 4, spatial=True)


def test_only_the_first_block_normalises_per_sample():
    fe = SpikingFrontEnd(2, channels=(4, 8, 8), dt_ms=5.0, current_norm="sample")
    kinds = [type(b.bn).__name__ for b in fe.blocks]
    assert kinds == ["GroupNorm", "BatchNorm2d", "BatchNorm2d"]
    assert type(SpikingFrontEnd(2, channels=(4, 8)).blocks[0].bn).__name__ == "BatchNorm2d"


def _running_norm_loop(x, spatial, eps=1e-5):
    """The obvious form: per sample, channel (group) and bin, the mean and variance of every value of
    that channel in bins 0..t, in float64."""
    T, B = x.shape[:2]
    x = x.double()
    groups = x if spatial else x[:, :, None]  # (T, B, G, ...)
    y = torch.empty_like(groups)
    for b in range(B):
        for g in range(groups.shape[2]):
            for t in range(T):
                seen = groups[: t + 1, b, g].reshape(-1)
                m, v = seen.mean(), seen.var(unbiased=False)
                y[t, b, g] = (groups[t, b, g] - m) / torch.sqrt(v + eps)
    return y.reshape(x.shape)


@pytest.mark.parametrize("spatial", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_running_norm_matches_the_loop_and_continues_its_state(spatial, dtype):
    torch.manual_seed(0)
    shape = (3, 5, 4) if spatial else (6,)
    x = (_counts(9, 2, shape, rate=0.7) * torch.rand(9, 2, *shape)).to(dtype)
    norm = RunningSampleNorm(shape[0], spatial=spatial)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
        y, state = norm(x)
        w = norm.weight.double().reshape((1, 1, -1) + (1,) * (x.dim() - 3))
        b = norm.bias.double().reshape(w.shape)
        tol = dict(atol=2e-5, rtol=2e-5) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(y.double(), _running_norm_loop(x, spatial) * w + b, **tol)
        y1, s1 = norm(x[:4])
        y2, s2 = norm(x[4:], s1)
    torch.testing.assert_close(torch.cat([y1, y2]), y)
    for a, c in zip(s2, state):
        torch.testing.assert_close(a, c)
    # invariant to a uniform rescaling of the input (up to eps), and it trains
    with torch.no_grad():
        torch.testing.assert_close(norm(0.25 * x)[0], y, atol=5e-3, rtol=5e-3)
    xg = x.clone().requires_grad_(True)
    norm(xg)[0].square().sum().backward()
    assert xg.grad.abs().sum() > 0 and norm.weight.grad.abs().sum() > 0


def test_running_norm_block_state_carries_the_sums_and_is_per_sample():
    torch.manual_seed(0)
    for recurrent in (False, True):
        block = SpikingConvBlock(2, 4, LIF_KW, recurrent=recurrent, norm="running").eval()
        with torch.no_grad():
            block.bn.weight.fill_(3.0)
        x = _counts(8, 3, (2, 8, 8), rate=0.5)
        with torch.no_grad():
            s, state = block(x)
            s1, st1 = block(x[:3])
            s2, st2 = block(x[3:], st1)
            other = x.clone()
            other[:, 1:] = _counts(8, 2, (2, 8, 8), seed=3, rate=1.5)
            s_other, _ = block(other)
        assert s.sum() > 0
        torch.testing.assert_close(torch.cat([s1, s2]), s)
        torch.testing.assert_close(st2[0][0], state[0][0])
        torch.testing.assert_close(s_other[:, 0], s[:, 0])


def test_model_option_is_validated_and_streams_exactly():
    with pytest.raises(ConfigError, match="current_norm"):
        ModelConfig(name="mambaspike", current_norm="layer")
    small = dict(channels=(8, 16), d_model=32, n_layers=2, spatial_out=2)
    for kind in ("sample", "running"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="mambaspike", input_shape=(2, 20, 20), current_norm=kind, **small))
        model.eval()
        x = _counts(17, 2, (2, 20, 20), rate=0.5)
        with torch.no_grad():
            full = model(x)
        assert (model.stream(x) - full).abs().max() <= 1e-5


def test_dense_fused_path_refuses_sample_norm_and_the_reference_runs():
    fe = SpikingFrontEnd(6, channels=(8, 8), dt_ms=5.0, spatial=False, current_norm="sample").eval()
    x = torch.rand(9, 2, 6)
    with torch.no_grad():
        why = frontend_fused.unsupported(fe, x, None)
        assert why == "a current norm other than BatchNorm (current_norm 'sample' or 'running')"
        out, _ = fe(x)
        ref, _ = fe.forward_reference(x)
    torch.testing.assert_close(out, ref)


def test_nir_export_refuses_a_sample_norm_block():
    pytest.importorskip("nir")
    from mambaspike.export.nir import frontend_to_nir

    for kind in ("sample", "running"):
        fe = SpikingFrontEnd(2, channels=(4, 8), dt_ms=5.0, neuron="lif", current_norm=kind).eval()
        with pytest.raises(
            ExportError,
            match=rf"block 0 normalises each sample's current on its own \(current_norm='{kind}'\).*--blocks 1:2",
        ):
            frontend_to_nir(fe, (2, 16, 16))
    graph, _ = frontend_to_nir(fe, (4, 8, 8), blocks=(1, 2))  # the blocks after it export
    assert graph.nodes


def test_records_from_before_the_option_were_batch_normalised():
    from mambaspike.training.run import record_resolved, resolved_config

    model = ModelConfig(name="mambaspike").to_dict()
    old = {k: v for k, v in model.items() if k != "current_norm"}
    assert (
        record_resolved({"resolved": resolved_config({"dataset": "ndigits"}, old, "v")})["model"]["current_norm"]
        == "batch"
    )


def test_the_paper_and_lif_variants_pin_batchnorm():
    from mambaspike.models.config import VARIANTS

    assert VARIANTS["mambaspike-paper"][1]["current_norm"] == "batch"
    assert VARIANTS["mambaspike-lif"][1]["current_norm"] == "batch"
    assert ModelConfig().current_norm == "batch"
