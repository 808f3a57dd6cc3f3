"""The fused inference forward of the dense spiking front-end against the block-by-block reference.

:meth:`SpikingFrontEnd.forward` runs :func:`mambaspike.models.frontend_fused.forward` (one compiled
call) where :func:`~mambaspike.models.frontend_fused.unsupported` allows it, else
:meth:`SpikingFrontEnd.forward_reference`. Compared here, under ``torch.no_grad()`` on modules in
eval mode:

- output spikes exactly equal, every returned state (per block ``v``, or ``ALIFState(v, a)`` for an
  ALIF block; ``(state, s_prev)`` for the recurrent last block) equal -- ``v`` to rounding, ``a`` and
  ``s_prev`` exactly -- over dtypes, pooling modes and sizes, depths, recurrence, input widths, batch
  sizes and sequence lengths (divisible by the pool or not), for LIF, ALIF and mixed stacks;
- chunked runs that pass states between calls (including partial states), and that the fused path
  leaves a given state untouched;
- LIF and ALIF variants (soft reset, no input decay, non-zero ``v_reset``, learnable threshold; the
  ALIF's adaptation strength and time constant);
- which path runs (fused, or the reference where training, autograd, hooks, spatial input, other
  neurons, per-neuron parameters, states of another form or dtypes need it);
- parameter changes between calls (in place, through ``.data``, replaced tensors or modules, plain
  attributes, ``load_state_dict``): the kernel reads the modules on every call;
- a whole Mamba-Spike model's logits with either front-end path (LIF and the default ALIF);
- the membrane readout (a non-spiking ``LeakyIntegrator`` last block, the recurrence on the block
  before it): output potentials and states to rounding, ``s_prev`` exactly, chunks, the integrator's
  variants, refusals and a whole model's logits.

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
from mambaspike.neurons.functional import ALIFState
from mambaspike.neurons.modules import ALIF, LIF, NEURONS, LeakyIntegrator

ATOL = {torch.float32: 1e-5, torch.float64: 1e-12}
RATE_LO, RATE_HI = 0.05, 0.95
# the test ALIFs' adaptation: its time constant short enough (ms, in 1 ms bins) for the threshold to
# rise and fall within a test sequence, its strength large enough to change the spikes
TAU_ADAPT, ADAPT = 20.0, 0.1


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


def _kinds(neurons, n):
    """Per-block neuron names for ``neurons``: ``"lif"`` or ``"alif"`` everywhere, or ``"lif_alif"`` /
    ``"alif_lif"``: the two alternating, the first named in block 0."""
    if neurons in ("lif", "alif"):
        return (neurons,) * n
    first, second = neurons.split("_")
    return tuple(first if i % 2 == 0 else second for i in range(n))


def _make(
    F,
    channels,
    recurrent=True,
    pool=2,
    mode="max",
    dtype=torch.float64,
    seed=0,
    tau_ms=4.0,
    lif_setup=None,
    gain=1.0,
    neurons="lif",
    tau_adapt=TAU_ADAPT,
    adapt=ADAPT,
    readout="spikes",
):
    """A dense front-end in eval mode that fires: weights x3, each layer's BatchNorm calibrated on
    the data (in order, so a layer sees its inputs as they are in eval mode) then given a random
    per-neuron gain and offset (times ``gain``: long time constants need larger currents), running
    statistics perturbed. ``neurons`` (see :func:`_kinds`): the blocks named ``alif`` get an
    ``ALIF(tau_adapt=tau_adapt, adapt=adapt)``. ``lif_setup(block_index, lif)`` edits the neurons first.
    ``readout="membrane"``: the last block is the non-spiking leaky integrator (its ``neurons`` entry unused)."""
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
        readout=readout,
    )
    for b, kind in zip(fe.blocks, _kinds(neurons, len(channels))):
        if kind == "alif" and type(b.lif) is not LeakyIntegrator:
            b.lif = ALIF(tau=tau_ms, dt=b.lif.dt, v_threshold=1.0, tau_adapt=tau_adapt, adapt=adapt)
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
    """Per-block states as a flat list of tensors (``(state, s_prev)`` and ``ALIFState(v, a)``
    unpacked; ``None`` kept)."""
    out = []
    for s in states:
        out.extend(_flat(s) if isinstance(s, tuple) else (s,))
    return out


def _clone(states):
    def c(s):
        if isinstance(s, ALIFState):
            return ALIFState(*map(c, s))
        if isinstance(s, tuple):
            return tuple(map(c, s))
        return None if s is None else s.clone()

    return [c(s) for s in states]


def _assert_state(a, b, dtype, where):
    """One block's fused state ``a`` against the reference's ``b``: the same structure, ``v`` equal
    to rounding (the currents' sums run in another order), ``a`` and ``s_prev`` exactly."""
    if isinstance(b, ALIFState):
        assert isinstance(a, ALIFState), f"{where}: {type(a).__name__} where the reference has an ALIFState"
        torch.testing.assert_close(a.v, b.v, atol=ATOL[dtype], rtol=0, msg=lambda m: f"{where} v: {m}")
        assert a.a.dtype == b.a.dtype == dtype and torch.equal(a.a, b.a), f"{where}: a differs"
    elif isinstance(b, tuple):  # the recurrent block's (state, s_prev)
        assert type(a) is tuple and len(a) == len(b) == 2, f"{where}: {type(a).__name__} for (state, s_prev)"
        _assert_state(a[0], b[0], dtype, where)
        assert torch.equal(a[1], b[1]), f"{where}: s_prev differs"
    else:
        assert torch.is_tensor(a), f"{where}: {type(a).__name__} where the reference has a tensor"
        torch.testing.assert_close(a, b, atol=ATOL[dtype], rtol=0, msg=lambda m: f"{where} v: {m}")


def _assert_same(fused, ref, dtype):
    (of, sf), (orf, sr) = fused, ref
    assert of.dtype == orf.dtype == dtype and of.shape == orf.shape
    n_diff = int((of != orf).sum())
    assert n_diff == 0, f"{n_diff} of {of.numel()} output values differ"
    assert len(sf) == len(sr)
    for i, (a, b) in enumerate(zip(sf, sr)):
        _assert_state(a, b, dtype, f"block {i}")


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


# stacks with ALIF blocks: every block ALIF, or ALIF and LIF alternating (either first)
_ALIF_STACKS = [
    ("alif", (8,)),
    ("alif", (8, 12)),
    ("alif", (8, 12, 16)),
    ("alif_lif", (8, 12)),
    ("lif_alif", (8, 12)),
    ("alif_lif", (8, 12, 16)),
    ("lif_alif", (8, 12, 16)),
]


def _state_kinds(states, kinds, recurrent):
    """Each block's state is what its neuron keeps: ``v`` (LIF) or ``ALIFState`` (ALIF), the
    recurrent last block's paired with ``s_prev``."""
    for i, (s, kind) in enumerate(zip(states, kinds)):
        if recurrent and i == len(states) - 1:
            assert type(s) is tuple and len(s) == 2, f"block {i}: {type(s).__name__}"
            s = s[0]
        assert isinstance(s, ALIFState) if kind == "alif" else torch.is_tensor(s), f"block {i}: {type(s).__name__}"


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("neurons,channels", _ALIF_STACKS, ids=[f"{n}-L{len(c)}" for n, c in _ALIF_STACKS])
@pytest.mark.parametrize("pool", [1, 2, 3], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_alif_matches_reference(dtype, mode, pool, neurons, channels, recurrent):
    F = 1 + 4 * (pool % 2)  # one and five input features
    fe = _make(F, channels, recurrent, pool, mode, dtype, seed=F + 10 * pool + 100 * len(channels), neurons=neurons)
    kinds = _kinds(neurons, len(channels))
    # T divisible by the pool, then not (k > 1)
    for B, T in itertools.product((1, 3), (6 * pool + 12, 6 * pool + 13)):
        x = _input(T, B, F, dtype, seed=T + 7 * B)
        (out, states), _ = _compare(fe, x)
        assert out.shape == ((T + pool - 1) // pool, B, channels[-1])
        assert len(states) == len(channels)
        _state_kinds(states, kinds, recurrent)
        if B == 3:
            _assert_fires(fe, x, out)
            for s, kind in zip(states, kinds):  # the adaptation traces are not trivially equal
                if kind == "alif":
                    a = (s[0] if type(s) is tuple else s).a
                    assert float(a.min()) >= 0 and float(a.max()) > 0.5


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("neurons", ["alif", "lif_alif"])
def test_adaptation_matters(neurons, recurrent):
    """The adaptation changes the fused output: without it (``adapt = 0``), or with a stronger or
    slower one, the spikes differ (and both paths still agree)."""
    fe = _make(5, (8, 12, 16), recurrent, pool=2, seed=40, neurons=neurons)
    x = _input(40, 3, 5, torch.float64, seed=41)
    (out, _), _ = _compare(fe, x)
    _assert_fires(fe, x, out)
    assert any(type(b.lif) is ALIF for b in fe.blocks)
    for edit in ("adapt=0", "adapt*2", "tau_adapt*4"):
        other = copy.deepcopy(fe)
        with torch.no_grad():
            for lif in (b.lif for b in other.blocks if type(b.lif) is ALIF):
                if edit == "adapt=0":
                    lif.adapt = 0.0
                elif edit == "adapt*2":
                    lif.adapt *= 2
                else:  # rho = exp(-dt / tau_adapt): a four times longer time constant
                    lif.w_adapt.copy_(torch.logit(torch.sigmoid(lif.w_adapt) ** 0.25))
        (out_e, _), _ = _compare(other, x)
        assert not torch.equal(out, out_e), edit


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


@pytest.mark.parametrize(
    "recurrent,kind",
    [(False, "full"), (False, "some_none"), (True, "full"), (True, "no_s_prev"), (True, "some_none")],
    ids=["ff-full", "ff-some_none", "rec-full", "rec-no_s_prev", "rec-some_none"],
)
@pytest.mark.parametrize("pool", [1, 3], ids=lambda k: f"k{k}")
@pytest.mark.parametrize(
    "neurons,channels",
    [("lif", (8,)), ("lif", (8, 12, 16)), ("alif", (8,)), ("alif", (8, 12, 16)), ("alif_lif", (8, 12, 16))],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_chunked_state(dtype, neurons, channels, pool, recurrent, kind):
    """A sequence in two calls, the second continuing from the first's states (the reference's, or
    partial ones), equals the reference; where the whole state is passed on at a window boundary,
    the two calls give exactly what one call gives. The given states are not modified."""
    fe = _make(5, channels, recurrent, pool=pool, dtype=dtype, seed=42, neurons=neurons)
    x = _input(12 * pool + 7, 3, 5, dtype, seed=43)
    cut = 6 * pool  # a whole number of windows
    (out1, st1), (_, st1_ref) = _compare(fe, x[:cut])
    state = _partial(st1_ref, kind)
    before = _clone(state)
    (out2, st2), _ = _compare(fe, x[cut:], state)
    for a, b in zip(_flat(state), _flat(before)):  # the given state is not modified in place
        assert (a is None and b is None) or torch.equal(a, b)
    _assert_fires(fe, x, torch.cat([out1, out2]))
    if kind == "full":
        with torch.no_grad():
            out, st = _fused(fe, x)
            out1f, st1f = _fused(fe, x[:cut])
            out2f, st2f = _fused(fe, x[cut:], st1f)  # the fused path's own states passed on
        assert torch.equal(torch.cat([out1, out2]), out) and torch.equal(torch.cat([out1f, out2f]), out)
        for a, b, c in zip(_flat(st2), _flat(st), _flat(st2f)):
            torch.testing.assert_close(a, b, atol=ATOL[dtype], rtol=0)
            torch.testing.assert_close(c, b, atol=ATOL[dtype], rtol=0)


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


def _check_variant(fe, channels, dtype, seed):
    """Batches of 1 and 3 equal the reference (the second fires), and a chunk continued from the last
    block's state does too (v_reset only matters for a missing state)."""
    for B in (1, 3):
        x = _input(31, B, 5, dtype, seed=seed + B)
        (out, _), _ = _compare(fe, x)
        if B == 3:
            _assert_fires(fe, x, out)
    (_, st), _ = _compare(fe, x[:10])
    _compare(fe, x[10:], [None] * (len(channels) - 1) + [st[-1]])


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
    _check_variant(fe, channels, dtype, seed=10)


def _alif_variant(name):
    """The ALIF blocks' neurons edited: a LIF variant of :func:`_variant`, or ``fixed_tau_adapt``
    (``w_adapt`` a buffer, not a parameter) / ``strong_adapt``."""
    lif_setup = None if name in ("fixed_tau_adapt", "strong_adapt") else _variant(name)

    def setup(i, lif):
        if type(lif) is not ALIF:
            return
        if lif_setup is not None:
            lif_setup(i, lif)
        elif name == "fixed_tau_adapt":
            w_adapt = lif.w_adapt.detach().clone()
            del lif.w_adapt
            lif.w_adapt = nn.Buffer(w_adapt)
        else:
            lif.adapt = 0.3

    return setup


@pytest.mark.parametrize(
    "variant", ["soft_reset", "no_decay_input", "v_reset_neg", "learn_threshold", "fixed_tau_adapt", "strong_adapt"]
)
@pytest.mark.parametrize("neurons,channels", [("alif", (8,)), ("alif", (8, 12, 16)), ("lif_alif", (8, 12, 16))])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_alif_variants(dtype, recurrent, neurons, channels, variant):
    setup = _alif_variant(variant)
    fe = _make(5, channels, recurrent, pool=2, mode="max", dtype=dtype, seed=44, lif_setup=setup, neurons=neurons)
    if variant == "fixed_tau_adapt":
        assert all("w_adapt" in b.lif._buffers for b in fe.blocks if type(b.lif) is ALIF)
    _check_variant(fe, channels, dtype, seed=45)


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


@pytest.mark.parametrize("neuron", [n for n in ("srm", "synaptic") if n in NEURONS])
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


@pytest.mark.parametrize("param", ["w", "w_adapt", "v_threshold"])
def test_per_neuron_alif_parameters_use_reference(spy, param):
    fe = _make(5, (8, 12), recurrent=False, seed=46, neurons="alif")
    lif = fe.blocks[1].lif
    setattr(lif, param, nn.Parameter(getattr(lif, param).detach().expand(12).clone()))
    x = _input(20, 2, 5, torch.float64, seed=47)
    with torch.no_grad():
        _, why = _reference_only(fe, x, spy)
    assert "per-neuron" in why


def test_reference_backend_alif_uses_reference(spy):
    fe = _make(5, (8, 12), recurrent=True, seed=48, neurons="alif")
    fe.blocks[0].lif.backend = "reference"
    x = _input(20, 2, 5, torch.float64, seed=49)
    with torch.no_grad():
        _, why = _reference_only(fe, x, spy)
    assert "ALIF" in why


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_state_of_another_form_is_refused(recurrent):
    """A block handed a state of another form than its neuron keeps (a LIF's ``v`` for an ALIF, an
    ``ALIFState`` for a LIF) is not run by the fused path."""
    fe = _make(5, (8, 12), recurrent=recurrent, seed=50, neurons="alif_lif")
    for p in fe.parameters():  # so that only a state can need a gradient
        p.requires_grad_(False)
    x = _input(20, 2, 5, torch.float64, seed=51)
    with torch.no_grad():
        _, st = _fused(fe, x)
        assert frontend_fused.unsupported(fe, x, st) is None
        v0 = st[0].v
        why = frontend_fused.unsupported(fe, x, [v0, st[1]])
        assert "ALIFState" in why
        last = ALIFState(v0[:, :0], v0[:, :0])  # an ALIFState for the LIF block
        why = frontend_fused.unsupported(fe, x, [st[0], (last, st[1][1]) if recurrent else last])
        assert "tensor" in why
        if recurrent:
            why = frontend_fused.unsupported(fe, x, [st[0], st[1][0]])
            assert "pair" in why
        v1 = (st[1][0] if recurrent else st[1]).clone().requires_grad_(True)
        with torch.enable_grad():
            assert "autograd" in frontend_fused.unsupported(fe, x, [st[0], (v1, None) if recurrent else v1])
            a0 = st[0].a.clone().requires_grad_(True)
            assert "autograd" in frontend_fused.unsupported(fe, x, [ALIFState(v0, a0), st[1]])


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


_ALIF_CHANGES = ["adapt", "w_adapt", "w_adapt_data", "tau", "threshold", "soft_reset", "lif_to_alif", "alif_to_lif"]


@pytest.mark.parametrize("change", _ALIF_CHANGES)
def test_alif_changes_between_calls_take_effect(change):
    """The ALIF's scalars are read on every call: a changed ``adapt`` (a plain attribute), ``w_adapt``
    (in place or through ``.data``), ``w``, threshold or reset, or a block's neuron replaced by the
    other kind, changes the next fused call's output as it changes the reference's."""
    fe = _make(5, (8, 12, 16), recurrent=True, pool=2, seed=52, neurons="alif_lif")
    x = _input(40, 3, 5, torch.float64, seed=53)
    (before, _), _ = _compare(fe, x)
    b0, b1, b2 = fe.blocks
    with torch.no_grad():
        if change == "adapt":
            b2.lif.adapt = 0.05
        elif change == "w_adapt":
            b0.lif.w_adapt.sub_(2.0)
        elif change == "w_adapt_data":
            b2.lif.w_adapt.data = b2.lif.w_adapt.detach() - 2.0
        elif change == "tau":
            b0.lif.w.add_(1.0)
        elif change == "threshold":
            b2.lif.v_threshold.fill_(1.3)
        elif change == "soft_reset":
            b0.lif.soft_reset = True
        elif change == "lif_to_alif":
            b1.lif = ALIF(tau=4.0, dt=b1.lif.dt, tau_adapt=TAU_ADAPT, adapt=0.3).double()
        elif change == "alif_to_lif":
            b2.lif = LIF(tau=4.0, dt=b2.lif.dt).double()
    (after, st), _ = _compare(fe, x)
    assert not torch.equal(before, after), "the change should change the output"


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


@pytest.mark.parametrize("neuron,readout", [("alif", "spikes"), ("lif", "spikes"), ("alif", "membrane")])
def test_whole_model_logits(monkeypatch, spy, neuron, readout):
    """The model on 1-D input (the default ALIF neurons, the paper's LIF, or the membrane readout) runs
    its front-end through the fused path in eval mode, with the logits of the block-by-block front-end."""
    from mambaspike.models.config import ModelConfig
    from mambaspike.models.registry import build_model

    torch.manual_seed(54)
    cfg = ModelConfig(name="mambaspike", input_shape=(1,), dt_ms=1.0, channels=(8, 12, 16), d_model=32, n_layers=1)
    assert cfg.neuron == "alif"  # the default
    cfg = ModelConfig(**{**cfg.to_dict(), "neuron": neuron, "readout": readout})
    model = build_model(cfg).eval()
    fe = model.frontend
    spiking = fe.blocks[:-1] if readout == "membrane" else fe.blocks
    assert all(type(b.lif) is (ALIF if neuron == "alif" else LIF) for b in spiking)
    assert readout == "spikes" or type(fe.blocks[-1].lif) is LeakyIntegrator
    x = _input(60, 3, 1, torch.float32, seed=55)
    adaptation = dict(tau_adapt=fe.blocks[0].lif.tau_adapt, adapt=fe.blocks[0].lif.adapt) if neuron == "alif" else {}
    calibrated = _make(
        1,
        (8, 12, 16),
        recurrent=any(b.recurrent is not None for b in fe.blocks),
        pool=fe.temporal_pool,
        mode=fe.temporal_pool_mode,
        dtype=torch.float32,
        seed=56,
        tau_ms=30.0,
        gain=6.0,
        neurons=neuron,
        readout=readout,
        **adaptation,
    )
    fe.load_state_dict(calibrated.state_dict())  # make the model's front-end fire
    with torch.no_grad():
        out, _ = fe(x)
        (_assert_li_fires if readout == "membrane" else _assert_fires)(fe, x, out)
        logits = model(x)
    assert len(spy) == 2
    monkeypatch.setattr(fe, "forward", fe.forward_reference)
    with torch.no_grad():
        logits_ref = model(x)
    assert len(spy) == 2
    assert logits.shape == (3, 10)
    torch.testing.assert_close(logits, logits_ref, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# 7. the membrane readout: a non-spiking leaky-integrator last block
# --------------------------------------------------------------------------------------------

# the spiking blocks' neurons before the integrator (the recurrence sits on the last of them)
_LI_STACKS = [("lif", (8, 12)), ("alif", (8, 12)), ("lif", (8, 12, 16)), ("alif_lif", (8, 12, 16))]


def _compare_li(fe, x, state=None):
    """Fused against reference for a membrane-readout front-end: the output potentials and every
    state to rounding, spikes kept in states (``s_prev``, ALIF traces) exactly."""
    dtype = x.dtype
    with torch.no_grad():
        (of, sf) = _fused(fe, x, state)
        (orf, sr) = fe.forward_reference(x, state)
    assert of.dtype == orf.dtype == dtype and of.shape == orf.shape
    torch.testing.assert_close(of, orf, atol=ATOL[dtype], rtol=0)
    assert len(sf) == len(sr)
    for i, (a, b) in enumerate(zip(sf, sr)):
        _assert_state(a, b, dtype, f"block {i}")
    return of, sf, sr


def _assert_li_fires(fe, x, out):
    """The spiking blocks fire at moderate rates; the readout's potentials are real-valued and vary."""
    spikes = _layer_spikes(fe, x)[:-1]
    rates = [float(s.float().mean()) for s in spikes]
    assert all(RATE_LO <= r <= RATE_HI for r in rates), f"firing rates of the spiking blocks: {rates}"
    non_binary = float(((out != 0) & (out != 1)).float().mean())
    assert non_binary > 0.9 and float(out.std()) > 0.05, (non_binary, float(out.std()))


@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
@pytest.mark.parametrize("neurons,channels", _LI_STACKS, ids=[f"{n}-L{len(c)}" for n, c in _LI_STACKS])
@pytest.mark.parametrize("pool", [1, 3], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_membrane_readout_matches_reference(dtype, mode, pool, neurons, channels, recurrent):
    fe = _make(5, channels, recurrent, pool, mode, dtype, seed=60 + pool, neurons=neurons, readout="membrane")
    assert type(fe.blocks[-1].lif) is LeakyIntegrator and fe.blocks[-1].recurrent is None
    assert (fe.blocks[-2].recurrent is not None) == recurrent
    for B, T in ((1, 6 * pool + 12), (3, 6 * pool + 13)):
        x = _input(T, B, 5, dtype, seed=T + 7 * B)
        out, states, _ = _compare_li(fe, x)
        assert out.shape == ((T + pool - 1) // pool, B, channels[-1])
        assert torch.is_tensor(states[-1]) and (type(states[-2]) is tuple) == recurrent
        if B == 3:
            _assert_li_fires(fe, x, out)


def test_membrane_readout_recurrence_matters():
    """The recurrence of the block before the integrator changes the fused readout (both paths agree)."""
    fe = _make(5, (8, 12, 16), recurrent=True, pool=2, seed=64, readout="membrane")
    x = _input(40, 3, 5, torch.float64, seed=65)
    out, _, _ = _compare_li(fe, x)
    with torch.no_grad():
        fe.blocks[-2].recurrent.weight.zero_()
    out0, _, _ = _compare_li(fe, x)
    assert (out - out0).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["full", "some_none"])
@pytest.mark.parametrize("pool", [1, 3], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_membrane_readout_chunked_state(dtype, pool, kind):
    """Two calls, the second from the first's states (whole, or with the first and the readout block's
    missing), equal the reference; with the whole state at a window boundary, one call."""
    fe = _make(5, (8, 12, 16), recurrent=True, pool=pool, dtype=dtype, seed=66, neurons="alif_lif", readout="membrane")
    x = _input(12 * pool + 7, 3, 5, dtype, seed=67)
    cut = 6 * pool
    out1, st1, st1_ref = _compare_li(fe, x[:cut])
    state = _clone(st1_ref) if kind == "full" else [None, _clone(st1_ref)[1], None]
    before = _clone(state)
    out2, _, _ = _compare_li(fe, x[cut:], state)
    for a, b in zip(_flat(state), _flat(before)):
        assert (a is None and b is None) or torch.equal(a, b)
    if kind == "full":
        with torch.no_grad():
            out, _ = _fused(fe, x)
            out2f, _ = _fused(fe, x[cut:], st1)  # the fused path's own states passed on
        torch.testing.assert_close(torch.cat([out1, out2]), out, atol=ATOL[dtype], rtol=0)
        torch.testing.assert_close(out2f, out2, atol=ATOL[dtype], rtol=0)


@pytest.mark.parametrize("variant", ["no_decay_input", "fixed_tau", "tau_changed"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_membrane_readout_variants(dtype, variant):
    """The integrator without input decay (``v = beta v + I``), with a fixed time constant (``w`` a
    buffer), and with its time constant changed between calls (the kernel reads it on every call)."""
    fe = _make(5, (8, 12), recurrent=True, pool=2, dtype=dtype, seed=68, readout="membrane")
    li = fe.blocks[-1].lif
    x = _input(31, 3, 5, dtype, seed=69)
    before, _, _ = _compare_li(fe, x)
    with torch.no_grad():
        if variant == "no_decay_input":
            li.decay_input = False
        elif variant == "fixed_tau":
            w = li.w.detach().clone()
            del li.w
            li.w = nn.Buffer(w)
        else:
            li.w.add_(1.5)
    after, _, _ = _compare_li(fe, x)
    assert (after - before).abs().max() > 1e-3 or variant == "fixed_tau"


def test_membrane_readout_refusals(spy):
    """Per-neuron integrator time constants and a state of another form for the integrator keep the
    reference path."""
    fe = _make(5, (8, 12), recurrent=True, seed=70, readout="membrane")
    x = _input(20, 2, 5, torch.float64, seed=71)
    with torch.no_grad():
        _, st = _fused(fe, x)
        bad = ALIFState(st[1], st[1])
        assert "tensor" in frontend_fused.unsupported(fe, x, [st[0], bad])
        li = fe.blocks[-1].lif
        li.w = nn.Parameter(li.w.detach().expand(12).clone())
        _, why = _reference_only(fe, x, spy)
    assert "per-neuron time constants" in why
