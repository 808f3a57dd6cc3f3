import math

import pytest
import torch

from mambaspike.errors import ConfigError
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model, count_parameters, loss_and_scores
from mambaspike.models.spiking_mamba.layers import (
    ChannelConv,
    SEWAdd,
    SpikingMambaBlock,
    SpikingPatchGenerator,
    SpikingS6,
    SpikingSelfAttentionBlock,
    lif,
)
from mambaspike.models.spiking_mamba.model import (
    SpikingMamba,
    patch_widths,
    spike_count_decode,
    spike_count_loss,
    spike_rate_loss,
)
from mambaspike.neurons.modules import LIF
from mambaspike.ssm.spiking_scan import spiking_scan, spiking_scan_parallel, spiking_scan_reference


def binary(t: torch.Tensor) -> bool:
    return set(t.unique().tolist()) <= {0.0, 1.0}


def spikes_like(*shape, p=0.3):
    return (torch.rand(*shape) < p).float()


# ---------------------------------------------------------------------------------------------
# the scan


@pytest.mark.parametrize("L", [1, 2, 5, 9, 16])
@pytest.mark.parametrize("binary_decay", [True, False])
def test_parallel_scan_matches_reference_outputs_and_gradients(L, binary_decay):
    torch.manual_seed(L)
    a = spikes_like(3, L, 4, 5, p=0.6) if binary_decay else torch.rand(3, L, 4, 5)
    a.requires_grad_()
    bx = torch.randn(3, L, 4, 5, requires_grad=True)
    c = torch.randn(3, L, 5, requires_grad=True)
    y_ref = spiking_scan_reference(a, bx, c)
    y_par = spiking_scan_parallel(a, bx, c)
    assert y_par.shape == (3, L, 4)
    torch.testing.assert_close(y_par, y_ref, rtol=1e-5, atol=1e-5)
    w = torch.randn_like(y_ref)
    g_ref = torch.autograd.grad((y_ref * w).sum(), (a, bx, c), allow_unused=True)
    g_par = torch.autograd.grad((y_par * w).sum(), (a, bx, c), allow_unused=True)
    for t, gr, gp in zip((a, bx, c), g_ref, g_par):  # with L = 1 the decay is unused (G starts at 0)
        gr = torch.zeros_like(t) if gr is None else gr
        gp = torch.zeros_like(t) if gp is None else gp
        torch.testing.assert_close(gp, gr, rtol=1e-4, atol=1e-4)


def test_scan_by_hand_and_broadcasting():
    # one channel, one state: G = a G + b, y = G c
    a = torch.tensor([1.0, 0.0, 1.0]).view(1, 3, 1, 1)
    bx = torch.tensor([1.0, 1.0, 1.0]).view(1, 3, 1, 1)
    c = torch.tensor([1.0, 2.0, 1.0]).view(1, 3, 1)
    # G = 1, then reset to 0 + 1 = 1, then 1 + 1 = 2
    for backend in ("reference", "parallel"):
        assert spiking_scan(a, bx, c, backend=backend).flatten().tolist() == [1.0, 2.0, 2.0]
    # (B, L, 1, N) decays broadcast against (B, L, E, N) inputs
    a2, bx2, c2 = torch.rand(2, 6, 1, 3), torch.randn(2, 6, 4, 3), torch.randn(2, 6, 3)
    torch.testing.assert_close(spiking_scan_parallel(a2, bx2, c2), spiking_scan_reference(a2, bx2, c2))
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        spiking_scan(a, bx, c, backend="cuda")


# ---------------------------------------------------------------------------------------------
# layers: shapes and binary outputs


def test_spiking_s6_shapes_binary_and_membrane():
    torch.manual_seed(0)
    s6 = SpikingS6(d_inner=8, d_state=4)
    x = spikes_like(3, 2, 5, 8)
    y = s6(x)
    assert y.shape == (3, 2, 5, 8) and binary(y)
    pre = s6(x, membrane=True)
    assert pre.shape == (3, 2, 5, 8) and not binary(pre)  # SSM output + x*K before the last neuron
    y.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in s6.parameters())
    # both scan backends give the same spikes
    s6.scan_backend = "reference"
    assert torch.equal(s6(x), y)


def test_channel_conv_and_patch_generator_shapes():
    torch.manual_seed(0)
    conv = ChannelConv(6, layers=2)
    x = spikes_like(2, 3, 7, 6)
    y = conv(x)
    assert y.shape == x.shape and binary(y)
    pg = SpikingPatchGenerator(1, (4, 8, 16), rpe=True)
    img = torch.rand(2, 3, 1, 28, 28)
    tokens = pg(img)
    side = SpikingPatchGenerator.out_size(28, 3)
    assert side == 5  # 28 -> 15 -> 8 -> 5 with maxpool(2, stride 2, padding 1)
    assert tokens.shape == (2, 3, side * side, 16) and binary(tokens)
    assert SpikingPatchGenerator(1, (4,), rpe=False)(img).shape == (2, 3, 15 * 15, 4)


def test_patch_widths_double_up_to_the_embedding():
    assert patch_widths(256, 4) == (32, 64, 128, 256)
    assert patch_widths(64, 2) == (32, 64)
    assert patch_widths(256, 4, first=8) == (8, 64, 128, 256)
    assert patch_widths(64, 1, first=8) == (64,)


@pytest.mark.parametrize("shortcut", ["sew", "membrane"])
def test_mamba_block_shapes_binary_gradients(shortcut):
    torch.manual_seed(0)
    block = SpikingMambaBlock(8, d_state=4, expand=2, conv_layers=2, mlp_layers=2, shortcut=shortcut)
    x = spikes_like(3, 2, 5, 8)
    y = block(x)
    assert y.shape == x.shape and binary(y)
    assert block.in_proj.fc.out_features == 16 and block.shortcut_proj.fc.out_features == 16
    assert len(block.conv.convs) == 2 and len(block.mlp) == 2
    y.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
    with pytest.raises(ValueError, match="shortcut must be 'sew' or 'membrane'"):
        SpikingMambaBlock(8, shortcut="ms")


def test_attention_block_shapes_binary_learnable_threshold():
    torch.manual_seed(0)
    block = SpikingSelfAttentionBlock(8, heads=2)
    x = spikes_like(3, 2, 5, 8)
    y = block(x)
    assert y.shape == x.shape and binary(y)
    assert isinstance(block.attn_lif.v_threshold, torch.nn.Parameter)
    y.sum().backward()
    assert block.attn_lif.v_threshold.grad is not None and block.attn_lif.v_threshold.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="not divisible by heads=3"):
        SpikingSelfAttentionBlock(8, heads=3)


def test_sew_shortcut_arithmetic():
    # add after the LIFs, then a LIF (membrane halved per step, threshold 0.5): an OR of the spikes
    sew = SEWAdd()
    a = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])
    b = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0])
    out = sew(a.view(5, 1), b.view(5, 1)).flatten()
    assert out.tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]
    # the neuron itself: h = v / 2 + x, hard reset, threshold 1
    n = lif()
    assert isinstance(n, LIF) and float(n.beta) == pytest.approx(0.5)
    s, _ = n(torch.tensor([0.6, 0.6, 0.6, 1.0, 0.2]).view(5, 1))
    # 0.6 -> 0.3 + 0.6 = 0.9 -> 0.45 + 0.6 = 1.05 spike, reset -> 1.0 spike -> 0.2
    assert s.flatten().tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]


# ---------------------------------------------------------------------------------------------
# losses and decoding


def test_losses_against_hand_computed_values():
    out = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]])  # (T=2, B=1, classes=2)
    target = torch.tensor([0])
    ce_1_0 = math.log(1 + math.exp(-1))  # cross-entropy of logits (1, 0) for class 0
    # per-step cross-entropy summed over steps (the paper's default)
    assert float(spike_rate_loss(out, target)) == pytest.approx(ce_1_0 + math.log(2))
    # cross-entropy of the counts (1, 0)
    assert float(spike_count_loss(out, target)) == pytest.approx(ce_1_0)
    # batch mean: a second sample with counts (0, 2), target 1
    out2 = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 1.0]]])  # (T=2, B=2, 2)
    t2 = torch.tensor([0, 1])
    ce_2_0 = math.log(1 + math.exp(-2))
    assert float(spike_count_loss(out2, t2)) == pytest.approx((ce_1_0 + ce_2_0) / 2)
    assert float(spike_rate_loss(out2, t2)) == pytest.approx((ce_1_0 + math.log(2) + 2 * ce_1_0) / 2)


def test_decoder_counts_spikes_and_model_protocol():
    out = torch.tensor([[[1.0, 0.0, 1.0]], [[0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0]]])  # (T=3, B=1, 3)
    assert spike_count_decode(out).tolist() == [[2.0, 0.0, 3.0]]
    model = build_model(ModelConfig(name="spiking-mamba", input_shape=(1, 8, 8), embed_dim=16, spike_loss="count"))
    assert model.decode(out).argmax(1).tolist() == [2]  # most spikes
    target = torch.tensor([2])
    assert float(model.loss(out, target)) == pytest.approx(float(spike_count_loss(out, target)))


@pytest.mark.parametrize("spike_loss", ["rate", "count"])
def test_forward_gives_spike_counts_and_the_trainer_loss_is_the_papers(spike_loss):
    """``forward`` -> logits: the spike counts of ``spike_train``; the harness's loss is the paper's
    loss of that spike train (and with ``count``, plain cross-entropy of the logits)."""
    model = build_model(small_cfg(spike_loss=spike_loss)).eval().requires_grad_(False)
    x, y = torch.rand(1, 3, 1, 8, 8), torch.tensor([0, 4, 9])
    train = model.spike_train(x)
    assert train.shape == (4, 3, 10) and binary(train)
    logits = model(x)
    assert torch.equal(logits, train.sum(0))
    loss, scores = loss_and_scores(model, x, y)
    paper = spike_rate_loss if spike_loss == "rate" else spike_count_loss
    assert float(loss) == float(paper(train, y)) and torch.equal(scores, logits)
    if spike_loss == "count":
        assert float(loss) == float(torch.nn.functional.cross_entropy(logits, y))


# ---------------------------------------------------------------------------------------------
# the model: encoding, patterns, hybrids


def small_cfg(**kw) -> ModelConfig:
    base = dict(name="spiking-mamba", input_shape=(1, 8, 8), num_classes=10, embed_dim=16, d_state=4, attn_heads=2)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("encoding", ["rate", "latency", "direct"])
def test_static_images_are_encoded_over_time_steps(encoding):
    torch.manual_seed(0)
    model = build_model(small_cfg(time_steps=3, input_encoding=encoding))
    x = torch.rand(1, 4, 1, 8, 8)
    enc = model.encode(x)
    assert enc.shape == (3, 4, 1, 8, 8)
    if encoding != "direct":
        assert binary(enc)
    out = model.spike_train(x)
    assert out.shape == (3, 4, 10) and binary(out)
    assert model(x).shape == (4, 10)


def test_event_frames_pass_through_and_eval_encoding_is_repeatable():
    model = build_model(small_cfg(time_steps=4))
    frames = spikes_like(6, 2, 1, 8, 8)
    assert model.encode(frames) is frames
    assert model.spike_train(frames).shape == (6, 2, 10) and model(frames).shape == (2, 10)
    model.eval()
    x = torch.rand(1, 2, 1, 8, 8)
    assert torch.equal(model(x), model(x))
    with pytest.raises(ConfigError, match=r"input values must lie in \[0, 1\]"):
        model(x * 3)


def test_hybrids_from_pattern_strings():
    model = build_model(small_cfg(pattern="MMMT"))
    kinds = [type(b).__name__ for b in model.blocks]
    assert kinds == ["SpikingMambaBlock"] * 3 + ["SpikingSelfAttentionBlock"]
    assert model.pattern == "MMMT"
    assert build_model(small_cfg(name="spiking-hybrid")).pattern == "MT"
    assert build_model(small_cfg()).pattern == "MM"
    assert build_model(small_cfg(name="spiking-hybrid", pattern="TMT")).pattern == "TMT"
    out = model.spike_train(torch.rand(1, 2, 1, 8, 8))
    assert out.shape == (4, 2, 10) and binary(out)
    for bad in ("", "MX", "mm"):
        with pytest.raises(ConfigError, match=r"ModelConfig.pattern = .*: expected a non-empty string of 'M', 'T'"):
            build_model(small_cfg(pattern=bad))


def test_bad_options_raise_naming_the_field():
    with pytest.raises(ConfigError, match="input_encoding = 'delta': expected one of 'rate', 'latency', 'direct'"):
        build_model(small_cfg(input_encoding="delta"))
    with pytest.raises(ConfigError, match="spike_loss = 'mse': expected one of 'rate', 'count'"):
        build_model(small_cfg(spike_loss="mse"))
    with pytest.raises(ConfigError, match="time_steps = 0: expected an integer >= 1"):
        build_model(small_cfg(time_steps=0))
    with pytest.raises(ConfigError, match="embed_dim = 16: expected a multiple of attn_heads = 3"):
        build_model(small_cfg(pattern="MT", attn_heads=3))


def test_default_sizes_and_config_round_trip():
    model = build_model(ModelConfig(name="spiking-mamba", input_shape=(1, 8, 8)))
    assert isinstance(model, SpikingMamba)
    assert 100_000 < count_parameters(model) < 250_000  # Table 1's scale (embedding 64, 2 blocks)
    cfg = small_cfg(pattern="MT", patch_channels=4)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_a_tiny_model_learns():
    """A few hundred optimiser steps on 200 digits take the training accuracy far above chance."""
    from mambaspike.data import collate_time_first, get_datasets

    torch.manual_seed(0)
    train, _, _, _ = get_datasets("digits", subset=200)
    x, y = collate_time_first([train[i] for i in range(len(train))])
    model = build_model(small_cfg(embed_dim=32, d_state=8, time_steps=4))
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)

    def accuracy():
        model.eval()
        with torch.no_grad():
            return float((model(x).argmax(1) == y).float().mean())

    before = accuracy()
    model.train()
    for _ in range(60):
        idx = torch.randperm(len(y))[:50]
        loss, _ = loss_and_scores(model, x[:, idx], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.train()
    after = accuracy()
    assert after > 0.35 and after > before + 0.2, (before, after)  # chance: 0.1
