"""The fused inference forward of the dense spiking front-end against the block-by-block reference.

:meth:`SpikingFrontEnd.forward` runs :func:`mambaspike.models.frontend_fused.forward` (one compiled
call) where :func:`~mambaspike.models.frontend_fused.unsupported` allows it, else
:meth:`SpikingFrontEnd.forward_reference`. Compared here, under ``torch.no_grad()`` on modules in
eval mode:

- output spikes exactly equal, every returned state (per block ``v``; ``(v, s_prev)`` for the
  recurrent last block) close, over dtypes, pooling modes and sizes, depths, recurrence, input
  widths, batch sizes and sequence lengths (divisible by the pool or not);
- chunked runs that pass states between calls (including partial states), and that the fused path
  leaves a given state untouched;
- LIF variants (soft reset, no input decay, non-zero ``v_reset``, learnable threshold);
- which path runs (fused, or the reference where training, autograd, hooks, spatial input, other
  neurons or dtypes need it);
- parameter changes between calls (in place, through ``.data``, replaced tensors or modules, plain
  attributes, ``load_state_dict``): the kernel reads the modules on every call;
- a whole Mamba-Spike model's logits with either front-end path.

The front-ends are made to fire: every layer's BatchNorm statistics are calibrated on the data and
its affine parameters randomised, weights are scaled up, and each test checks that every layer
fires at a rate well inside (0, 1), so equal spikes are not trivially equal.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from mambaspike.layers import frontend_fused
from mambaspike.layers.frontend import SpikingFrontEnd
from mambaspike.neurons.modules import LIF, NEURONS

ATOL = {torch.float32: 1e-5, torch.float64: 1e-12}
RATE_LO, RATE_HI = 0.05, 0.95


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _input(T, B, F, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, F, generator=g, dtype=torch.float64) * 3).to(dtype)


def _layer_spikes(fe, x, state=None):
    """Each block's LIF spikes on the reference path (hooks; the reference ignores them)."""
    seen = {}
    handles = [
        b.lif.register_forward_hook(lambda m, i, o, k=k: seen.setdefault(k, []).append(o[0].detach()))
        for k, b in enumerate(fe.blocks)
    ]
    try:
        with torch.no_grad():
            fe.forward_reference(x, state)
    finally:
        for h in handles:
            h.remove()
    return [torch.cat(seen[k]) for k in range(len(fe.blocks))]


def _assert_fires(fe, x, out):
    """Every layer (and the output) fires at a rate inside [RATE_LO, RATE_HI]."""
    rates = [float(s.float().mean()) for s in _layer_spikes(fe, x)] + [float(out.float().mean())]
    assert all(RATE_LO <= r <= RATE_HI for r in rates), f"firing rates per layer (+ output): {rates}"


def _make(
    F, channels, recurrent=True, pool=2, mode="max", dtype=torch.float64, seed=0, tau_ms=4.0, lif_setup=None, gain=1.0
):
    """A dense front-end in eval mode that fires: weights x3, each layer's BatchNorm calibrated on
    the data (in order, so a layer sees its inputs as they are in eval mode) then given a random
    per-neuron gain and offset (times ``gain``: long time constants need larger currents), running
    statistics perturbed. ``lif_setup(block_index, lif)`` edits the neurons first."""
    torch.manual_seed(seed)
    fe = SpikingFrontEnd(
        in_channels=F,
        channels=channels,
        dt_ms=1.0,
        tau_ms=tau_ms,
        v_threshold=1.0,
        recurrent=recurrent,
        temporal_pool=pool,
        temporal_pool_mode=mode,
        spatial=False,
    )
    fe = fe.to(dtype).eval()
    g = torch.Generator().manual_seed(1000 + seed)

    def u(n, lo, hi):
        return (lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)).to(dtype)

    x_cal = _input(48, 4, F, dtype, seed=2000 + seed)
    with torch.no_grad():
        for i, b in enumerate(fe.blocks):
            if lif_setup is not None:
                lif_setup(i, b.lif)
            b.conv.weight.mul_(3)
            if b.recurrent is not None:
                b.recurrent.weight.mul_(3)
        for b in fe.blocks:
            bn, n = b.bn, b.bn.num_features
            bn.reset_running_stats()
            bn.momentum = None  # cumulative: one batch -> its statistics
            bn.train()
            fe.forward_reference(x_cal)
            bn.eval()
            bn.momentum = 0.1
            bn.running_mean.add_(0.1 * u(n, -1, 1) * bn.running_var.sqrt())
            bn.running_var.mul_(u(n, 0.8, 1.25))
            bn.weight.copy_(u(n, 1.0, 2.5) * gain)
            bn.bias.copy_(u(n, 0.2, 1.6) * gain)
    return fe


def _flat(states):
    """Per-block states as a flat list of tensors (``(v, s_prev)`` unpacked; ``None`` kept)."""
    out = []
    for s in states:
        out.extend(s if isinstance(s, tuple) else (s,))
    return out


def _clone(states):
    def c(t):
        return None if t is None else t.clone()

    return [tuple(map(c, s)) if isinstance(s, tuple) else c(s) for s in states]


def _assert_same(fused, ref, dtype):
    (of, sf), (orf, sr) = fused, ref
    assert of.dtype == orf.dtype == dtype and of.shape == orf.shape
    n_diff = int((of != orf).sum())
    assert n_diff == 0, f"{n_diff} of {of.numel()} output values differ"
    assert len(sf) == len(sr)
    for i, (a, b) in enumerate(zip(sf, sr)):
        assert isinstance(a, tuple) == isinstance(b, tuple), f"block {i}: state structure differs"
        if isinstance(a, tuple):
            (va, pa), (vb, pb) = a, b
            torch.testing.assert_close(va, vb, atol=ATOL[dtype], rtol=0, msg=lambda m, i=i: f"block {i} v: {m}")
            assert torch.equal(pa, pb), f"block {i}: s_prev differs"
        else:
            torch.testing.assert_close(a, b, atol=ATOL[dtype], rtol=0, msg=lambda m, i=i: f"block {i} v: {m}")


def _fused(fe, x, state=None):
    """``fe(x, state)`` after checking it takes the fused path."""
    why = frontend_fused.unsupported(fe, x, state)
    assert why is None, why
    return fe(x, state)


def _compare(fe, x, state=None):
    dtype = x.dtype
    with torch.no_grad():
        fused = _fused(fe, x, state)
        ref = fe.forward_reference(x, state)
    _assert_same(fused, ref, dtype)
    return fused, ref


@pytest.fixture
def spy(monkeypatch):
    """Counts calls of ``frontend_fused.forward`` (still running it)."""
    calls = []
    real = frontend_fused.forward

    def wrapped(fe, x, state=None):
        calls.append(tuple(x.shape))
        return real(fe, x, state)

    monkeypatch.setattr(frontend_fused, "forward", wrapped)
    return calls


# --------------------------------------------------------------------------------------------
# 1. fused == reference over configurations
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("channels", [(8,), (8, 12), (8, 12, 16)], ids=["L1", "L2", "L3"])
@pytest.mark.parametrize("pool", [1, 2, 3], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_fused_matches_reference(dtype, mode, pool, channels, recurrent):
    for F in (1, 5):
        fe = _make(F, channels, recurrent, pool, mode, dtype, seed=F + 10 * pool + 100 * len(channels))
        # T divisible by the pool, then not (k > 1)
        for B, T in itertools.product((1, 3), (6 * pool + 12, 6 * pool + 13)):
            x = _input(T, B, F, dtype, seed=T + 7 * B)
            (out, states), _ = _compare(fe, x)
            assert out.shape == ((T + pool - 1) // pool, B, channels[-1])
            assert len(states) == len(channels) and isinstance(states[-1], tuple) == recurrent
            if B == 3:
                _assert_fires(fe, x, out)


@pytest.mark.parametrize("channels", [(8,), (8, 12), (8, 12, 16)], ids=["L1", "L2", "L3"])
def test_recurrent_connection_matters(channels):
    """Zeroing the recurrent weight changes the fused output (and both paths still agree)."""
    fe = _make(5, channels, recurrent=True, pool=2, seed=3)
    x = _input(40, 3, 5, torch.float64, seed=4)
    (out, _), _ = _compare(fe, x)
    _assert_fires(fe, x, out)
    with torch.no_grad():
        fe.blocks[-1].recurrent.weight.zero_()
    (out0, _), _ = _compare(fe, x)
    assert not torch.equal(out, out0)


# --------------------------------------------------------------------------------------------
# 2. chunks and states
# --------------------------------------------------------------------------------------------


def _partial(states, kind):
    """Variants of a state handed to the next chunk."""
    states = _clone(states)
    if kind == "full":
        return states
    if kind == "no_s_prev":  # the recurrent block's (v, None)
        v, _ = states[-1]
        return states[:-1] + [(v, None)]
    if kind == "some_none":  # the first block from rest, the last (recurrent) block from scratch
        return [None] + states[1:-1] + [None] if len(states) > 1 else [None]
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["full", "no_s_prev", "some_none"])
@pytest.mark.parametrize("pool", [1, 3], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("channels", [(8,), (8, 12, 16)], ids=["L1", "L3"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_chunked_state(dtype, channels, pool, kind):
    fe = _make(5, channels, recurrent=True, pool=pool, dtype=dtype, seed=5)
    x = _input(12 * pool + 7, 3, 5, dtype, seed=6)
    cut = 6 * pool  # a whole number of windows
    (out1, st1), (_, st1_ref) = _compare(fe, x[:cut])
    state = _partial(st1_ref, kind)
    before = _clone(state)
    (out2, st2), _ = _compare(fe, x[cut:], state)
    for a, b in zip(_flat(state), _flat(before)):  # the given state is not modified in place
        assert (a is None and b is None) or torch.equal(a, b)
    _assert_fires(fe, x, torch.cat([out1, out2]))
    if kind == "full":  # a state at a window boundary continues the same trajectory
        with torch.no_grad():
            out, st = _fused(fe, x)
        assert torch.equal(torch.cat([out1, out2]), out)
        for a, b in zip(_flat(st2), _flat(st)):
            torch.testing.assert_close(a, b, atol=ATOL[dtype], rtol=0)


def test_chunk_not_at_window_boundary():
    """Chunks cut inside a pooling window (each call pools its own bins): both paths still agree,
    and with the fused path's own states passed on."""
    fe = _make(1, (8, 12), recurrent=True, pool=3, mode="avg", seed=7)
    x = _input(40, 2, 1, torch.float64, seed=8)
    (_, st_f), _ = _compare(fe, x[:13])
    state = _clone(st_f)
    _compare(fe, x[13:], st_f)
    for a, b in zip(_flat(st_f), _flat(state)):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------------------------
# 3. LIF variants
# --------------------------------------------------------------------------------------------


def _variant(name):
    def setup(i, lif):
        kind = name if name != "mixed" else ("soft_reset", "no_decay_input", "learn_threshold")[i % 3]
        if kind == "soft_reset":
            lif.soft_reset = True
        elif kind == "no_decay_input":  # h = beta v + x: threshold raised to keep the firing rate moderate
            lif.decay_input = False
            lif.v_threshold.fill_(1.0 / (1.0 - float(lif.beta)))
        elif kind == "v_reset_pos":
            lif.v_reset = 0.4
        elif kind == "v_reset_neg":
            lif.v_reset = -0.5
        elif kind == "learn_threshold":
            lif.v_threshold = nn.Parameter(torch.full_like(lif.v_threshold, 0.9))
        else:
            raise ValueError(kind)

    return setup


@pytest.mark.parametrize(
    "variant", ["soft_reset", "no_decay_input", "v_reset_pos", "v_reset_neg", "learn_threshold", "mixed"]
)
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("channels", [(8,), (8, 12, 16)], ids=["L1", "L3"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_lif_variants(dtype, channels, recurrent, variant):
    fe = _make(5, channels, recurrent, pool=2, mode="max", dtype=dtype, seed=9, lif_setup=_variant(variant))
    if variant == "learn_threshold":
        assert all(isinstance(b.lif.v_threshold, nn.Parameter) for b in fe.blocks)
    for B in (1, 3):
        x = _input(31, B, 5, dtype, seed=10 + B)
        (out, _), _ = _compare(fe, x)
        if B == 3:
            _assert_fires(fe, x, out)
    # a chunk continued from a state (v_reset only matters for a missing state)
    (_, st), _ = _compare(fe, x[:10])
    _compare(fe, x[10:], [None] * (len(channels) - 1) + [st[-1]])


# --------------------------------------------------------------------------------------------
# 4. which path runs
# --------------------------------------------------------------------------------------------


def test_fused_path_taken_in_inference(spy):
    fe = _make(5, (8, 12), recurrent=True, pool=2, dtype=torch.float32, seed=11)
    x = _input(30, 2, 5, torch.float32, seed=12)
    with torch.no_grad():
        fe(x)
    assert spy == [tuple(x.shape)]
    # grad mode on, but nothing requires grad (frozen parameters): still fused
    for p in fe.parameters():
        p.requires_grad_(False)
    with torch.enable_grad():
        assert frontend_fused.unsupported(fe, x, None) is None
        fe(x)
    assert len(spy) == 2


def _reference_only(fe, x, spy, state=None):
    """``fe(x)`` does not take the fused path, says why, and equals the reference."""
    why = frontend_fused.unsupported(fe, x, state)
    assert isinstance(why, str) and why
    n = len(spy)
    out, _ = fe(x, state)
    assert len(spy) == n, "the fused path ran"
    return out, why


def test_train_mode_uses_reference(spy):
    fe = _make(5, (8, 12), recurrent=True, seed=13).train()
    x = _input(30, 2, 5, torch.float64, seed=14)
    with torch.no_grad():
        _, why = _reference_only(fe, x, spy)
    assert "BatchNorm" in why


def test_autograd_uses_reference(spy):
    fe = _make(5, (8, 12), recurrent=True, seed=15)
    x = _input(30, 2, 5, torch.float64, seed=16)
    with torch.enable_grad():
        out, why = _reference_only(fe, x, spy)  # parameters require grad
        assert "autograd" in why and out.requires_grad
        for p in fe.parameters():
            p.requires_grad_(False)
        xg = x.clone().requires_grad_(True)
        out, why = _reference_only(fe, xg, spy)  # the input requires grad
        assert "autograd" in why and out.requires_grad
        with torch.no_grad():
            _, st = fe(x[:10])
        v0 = st[0].clone().requires_grad_(True)
        _, why = _reference_only(fe, x[10:], spy, [v0, st[1]])  # a state requires grad
        assert "autograd" in why


def test_hooked_lif_uses_reference_and_sees_spikes(spy):
    fe = _make(5, (8, 12), recurrent=True, pool=2, seed=17)
    x = _input(30, 2, 5, torch.float64, seed=18)
    with torch.no_grad():
        out_fused, _ = _fused(fe, x)
    counts = {}

    def counter(k):
        def hook(module, inputs, output):
            counts[k] = counts.get(k, 0) + int(output[0].sum())
            counts[f"{k}_shape"] = tuple(output[0].shape)

        return hook

    handles = [b.lif.register_forward_hook(counter(k)) for k, b in enumerate(fe.blocks)]
    try:
        with torch.no_grad():
            out, why = _reference_only(fe, x, spy)
    finally:
        for h in handles:
            h.remove()
    assert "hooks" in why
    assert torch.equal(out, out_fused)
    assert counts["0_shape"] == (30, 2, 8) and counts["1_shape"] == (15, 2, 12)
    assert counts[1] == int(out_fused.sum()) > 0  # the last block's spikes are the output
    assert counts[0] > 0
    with torch.no_grad():  # hooks removed: fused again
        fe(x)
    assert len(spy) == 2


@pytest.mark.parametrize("where", ["block", "bn", "recurrent", "frontend", "global", "pre_hook"])
def test_other_hooks_use_reference(spy, where):
    fe = _make(5, (8, 12), recurrent=True, seed=19)
    x = _input(20, 2, 5, torch.float64, seed=20)
    with torch.no_grad():
        expected, _ = _fused(fe, x)
    hook = lambda *a: None  # noqa: E731
    if where == "global":
        h = nn.modules.module.register_module_forward_hook(hook)
    elif where == "pre_hook":
        h = fe.blocks[0].conv.register_forward_pre_hook(hook)
    else:
        m = {"block": fe.blocks[1], "bn": fe.blocks[0].bn, "recurrent": fe.blocks[1].recurrent, "frontend": fe}[where]
        h = m.register_forward_hook(hook)
    try:
        with torch.no_grad():
            out, why = _reference_only(fe, x, spy)
    finally:
        h.remove()
    assert "hooks" in why and torch.equal(out, expected)


def test_spatial_frontend_uses_reference(spy):
    fe = SpikingFrontEnd(in_channels=1, channels=(4, 6), spatial=True, spatial_out=2).eval()
    x = torch.rand(6, 2, 1, 8, 8) * 3
    with torch.no_grad():
        out, why = _reference_only(fe, x, spy)
    assert out.shape == (3, 2, 6, 2, 2)


@pytest.mark.parametrize("neuron", [n for n in ("srm", "alif", "synaptic") if n in NEURONS])
def test_other_neurons_use_reference(spy, neuron):
    fe = SpikingFrontEnd(in_channels=5, channels=(8, 12), recurrent=True, spatial=False, neuron=neuron).eval()
    x = _input(20, 2, 5, torch.float32, seed=21)
    with torch.no_grad():
        out, why = _reference_only(fe, x, spy)
    assert "LIF" in why and out.shape == (10, 2, 12)


def test_reference_backend_lif_uses_reference(spy):
    fe = _make(5, (8, 12), recurrent=False, seed=22)
    fe.blocks[1].lif.backend = "reference"
    x = _input(20, 2, 5, torch.float64, seed=23)
    with torch.no_grad():
        _, why = _reference_only(fe, x, spy)
    assert "LIF" in why


def test_per_neuron_threshold_uses_reference(spy):
    fe = _make(5, (8, 12), recurrent=False, seed=24)
    fe.blocks[0].lif.v_threshold = torch.full((8,), 1.0, dtype=torch.float64)
    x = _input(20, 2, 5, torch.float64, seed=25)
    with torch.no_grad():
        _, why = _reference_only(fe, x, spy)
    assert "per-neuron" in why


def test_float16_and_short_input_use_reference(spy):
    fe = _make(5, (8, 12), recurrent=True, dtype=torch.float32, seed=26)
    with torch.no_grad():
        x1 = _input(1, 2, 5, torch.float32, seed=27)  # one bin
        _, why = _reference_only(fe, x1, spy)
        assert "two bins" in why
        x = _input(20, 2, 5, torch.float32, seed=27)
        assert frontend_fused.unsupported(fe, x.double(), None)  # weights of another dtype
        fe16 = copy.deepcopy(fe).half()
        out, why = _reference_only(fe16, x.half(), spy)
        assert out.dtype == torch.float16 and "float32/float64" in why


# --------------------------------------------------------------------------------------------
# 5. parameter changes between calls (the kernel reads the modules on every call)
# --------------------------------------------------------------------------------------------


_CHANGES = [
    "conv_weight",
    "bn_running_mean",
    "bn_running_var",
    "bn_weight",
    "bn_bias",
    "recurrent_weight",
    "lif_tau",
    "lif_threshold",
    "replace_weight",
    "replace_lif",
    "data_inplace",
    "data_assign",
    "lif_soft_reset",
    "lif_decay_input",
    "lif_v_reset",
    "bn_eps",
]


def _change(fe, change):
    b0, b1, b2 = fe.blocks
    with torch.no_grad():
        if change == "conv_weight":
            b1.conv.weight.mul_(0.5)
        elif change == "bn_running_mean":
            b0.bn.running_mean.add_(0.5)
        elif change == "bn_running_var":
            b2.bn.running_var.mul_(4)
        elif change == "bn_weight":
            b1.bn.weight.mul_(0.5)
        elif change == "bn_bias":
            b2.bn.bias.sub_(0.4)
        elif change == "recurrent_weight":
            b2.recurrent.weight.mul_(-1)
        elif change == "lif_tau":
            b0.lif.w.add_(1.0)
        elif change == "lif_threshold":
            b1.lif.v_threshold.fill_(1.4)
        elif change == "replace_weight":
            b1.conv.weight = nn.Parameter(b1.conv.weight * 0.5)
        elif change == "replace_lif":
            b2.lif = LIF(tau=4.0, dt=2.0, v_threshold=0.7).double()
        elif change == "data_inplace":  # .data has its own version counter
            b1.conv.weight.data.mul_(0.5)
        elif change == "data_assign":  # same Parameter object, same version
            b1.conv.weight.data = b1.conv.weight.detach() * 0.5
        elif change == "lif_soft_reset":  # plain attributes of LIF / BatchNorm
            b0.lif.soft_reset = True
        elif change == "lif_decay_input":
            b1.lif.decay_input = False
        elif change == "lif_v_reset":
            b0.lif.v_reset = 0.6
        elif change == "bn_eps":
            b1.bn.eps = 0.5


@pytest.mark.parametrize("change", _CHANGES)
def test_changes_between_calls_take_effect(change):
    """Any change after a fused call -- in place, through ``.data``, a replaced tensor or module, a
    plain attribute -- is seen by the next fused call (nothing is cached)."""
    fe = _make(5, (8, 12, 16), recurrent=True, pool=2, seed=28)
    x = _input(40, 3, 5, torch.float64, seed=29)
    (before, _), _ = _compare(fe, x)
    _change(fe, change)
    (after, _), _ = _compare(fe, x)
    assert not torch.equal(before, after), "the change should change the output"


def test_load_state_dict_takes_effect():
    fe = _make(5, (8, 12), recurrent=True, pool=3, mode="avg", seed=30)
    other = _make(5, (8, 12), recurrent=True, pool=3, mode="avg", seed=31)
    x = _input(40, 3, 5, torch.float64, seed=32)
    (before, _), _ = _compare(fe, x)
    (expected, _), _ = _compare(other, x)
    assert not torch.equal(before, expected)
    fe.load_state_dict(other.state_dict())
    (after, _), _ = _compare(fe, x)
    assert torch.equal(after, expected)


def test_dtype_switches():
    fe = _make(5, (8, 12), recurrent=True, dtype=torch.float32, seed=33)
    x = _input(30, 2, 5, torch.float32, seed=34)
    _compare(fe, x)
    fe.double()
    _compare(fe, x.double())
    fe.float()
    _compare(fe, x)


# --------------------------------------------------------------------------------------------
# 6. whole model
# --------------------------------------------------------------------------------------------


def test_whole_model_logits(monkeypatch, spy):
    from mambaspike.models.config import ModelConfig
    from mambaspike.models.registry import build_model

    torch.manual_seed(37)
    model = build_model(
        ModelConfig(
            name="mambaspike", input_shape=(1,), dt_ms=1.0, channels=(8, 12, 16), d_model=32, n_layers=1, neuron="lif"
        )
    ).eval()  # the fused dense front-end runs plain LIF neurons (the paper's); ALIF takes the block path
    fe = model.frontend
    x = _input(60, 3, 1, torch.float32, seed=38)
    calibrated = _make(
        1,
        (8, 12, 16),
        recurrent=fe.blocks[-1].recurrent is not None,
        pool=fe.temporal_pool,
        mode=fe.temporal_pool_mode,
        dtype=torch.float32,
        seed=39,
        tau_ms=30.0,
        gain=6.0,
    )
    fe.load_state_dict(calibrated.state_dict())  # make the model's front-end fire
    with torch.no_grad():
        spikes, _ = fe(x)
        _assert_fires(fe, x, spikes)
        logits = model(x)
    assert len(spy) == 2
    monkeypatch.setattr(fe, "forward", fe.forward_reference)
    with torch.no_grad():
        logits_ref = model(x)
    assert len(spy) == 2
    assert logits.shape == (3, 10)
    torch.testing.assert_close(logits, logits_ref, rtol=1e-5, atol=1e-6)
