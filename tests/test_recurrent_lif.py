"""The fused recurrent LIF (compiled CPU kernels) against the reference loop: spikes, final states and
every gradient (input, recurrent weight, initial state, beta, threshold), at the function level and
through the front-end's recurrent blocks, whose loop over bins is the original reference."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mambaspike.evaluation.energy import OpCounter
from mambaspike.layers.blocks import SpikingConvBlock, SpikingDenseBlock
from mambaspike.neurons.functional import LIFParams
from mambaspike.neurons.recurrent import fused_supported, rlif_multistep, rlif_multistep_fast
from mambaspike.neurons.surrogate import make_surrogate

TOL = {torch.float32: dict(rtol=2e-5, atol=2e-6), torch.float64: dict(rtol=1e-11, atol=1e-12)}


def _run(fn, x, W, state, cfg, gs, gv, gsl, surrogate="atan"):
    x = x.clone().requires_grad_()
    W = W.clone().requires_grad_()
    w = torch.tensor(1.4, dtype=x.dtype, requires_grad=True)  # beta = sigmoid(w) ~ 0.8
    vth = torch.tensor(1.0, dtype=x.dtype, requires_grad=True)
    st_ = None if state is None else tuple(t.clone().requires_grad_() for t in state)
    p = LIFParams(torch.sigmoid(w), vth, **cfg)
    s, (v, sl) = fn(x, W, st_, p, make_surrogate(surrogate).to(x.dtype))
    torch.autograd.backward([s, v, sl], [gs, gv, gsl])
    grads = [x.grad, W.grad, w.grad, vth.grad] + ([] if st_ is None else [t.grad for t in st_])
    return s.detach(), v.detach(), grads


def _case(shape, dtype, seed, with_state):
    g = torch.Generator().manual_seed(seed)
    C = shape[2]
    x = torch.randn(*shape, generator=g, dtype=dtype) * 1.5 + 0.7
    W = torch.randn(C, C, generator=g, dtype=dtype) * 0.6
    state = None
    if with_state:
        state = (
            torch.randn(*shape[1:], generator=g, dtype=dtype) * 0.5,
            (torch.rand(*shape[1:], generator=g) > 0.6).to(dtype),
        )
    gs = torch.randn(*shape, generator=g, dtype=dtype)
    gv = torch.randn(*shape[1:], generator=g, dtype=dtype)
    gsl = torch.randn(*shape[1:], generator=g, dtype=dtype)
    return x, W, state, gs, gv, gsl


def _compare(a, b, dtype):
    (s0, v0, g0), (s1, v1, g1) = a, b
    assert torch.equal(s0, s1)
    torch.testing.assert_close(v1, v0, **TOL[dtype])
    for r, f in zip(g0, g1):
        if r is None:  # the reference never used that input (T = 1, no state: no recurrent term)
            assert f is None or not f.any()
            continue
        scale = max(1.0, float(r.abs().max()))
        torch.testing.assert_close(f, r, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale)


CFGS = [
    dict(),
    dict(soft_reset=True),
    dict(detach_reset=True),
    dict(decay_input=False, soft_reset=True),
    dict(v_reset=-0.2, detach_reset=True),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(9, 3, 5), (6, 2, 4, 3, 3), (1, 2, 3), (40, 1, 16)])
@pytest.mark.parametrize("cfg", CFGS)
@pytest.mark.parametrize("with_state", [False, True])
def test_fused_matches_reference(dtype, shape, cfg, with_state):
    x, W, state, gs, gv, gsl = _case(shape, dtype, seed=hash((shape, with_state)) % 1000, with_state=with_state)
    ref = _run(rlif_multistep, x, W, state, cfg, gs, gv, gsl)
    fast = _run(rlif_multistep_fast, x, W, state, cfg, gs, gv, gsl)
    _compare(ref, fast, dtype)


@pytest.mark.parametrize("surrogate", ["atan", "sigmoid", "fast-sigmoid", "triangle"])
def test_every_surrogate(surrogate):
    x, W, state, gs, gv, gsl = _case((12, 2, 6), torch.float64, 3, True)
    ref = _run(rlif_multistep, x, W, state, {}, gs, gv, gsl, surrogate)
    fast = _run(rlif_multistep_fast, x, W, state, {}, gs, gv, gsl, surrogate)
    _compare(ref, fast, torch.float64)


def test_long_sequence_many_rows_uses_threads_and_matches():
    # T * R * C * C > 2^20: the backward runs on several threads (when torch has them)
    x, W, state, gs, gv, gsl = _case((300, 8, 24), torch.float64, 5, False)
    _compare(
        _run(rlif_multistep, x, W, state, {}, gs, gv, gsl),
        _run(rlif_multistep_fast, x, W, state, {}, gs, gv, gsl),
        torch.float64,
    )


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(1, 20),
    B=st.integers(1, 3),
    C=st.integers(1, 9),
    S=st.integers(0, 2),
    seed=st.integers(0, 99),
    with_state=st.booleans(),
)
def test_fused_matches_reference_on_odd_shapes(T, B, C, S, seed, with_state):
    shape = (T, B, C) + (2,) * S
    x, W, state, gs, gv, gsl = _case(shape, torch.float64, seed, with_state)
    _compare(
        _run(rlif_multistep, x, W, state, {}, gs, gv, gsl),
        _run(rlif_multistep_fast, x, W, state, {}, gs, gv, gsl),
        torch.float64,
    )


def test_unsupported_calls_say_why():
    x = torch.zeros(3, 2, 4)
    p = LIFParams(torch.tensor(0.8), torch.tensor(1.0))
    assert "channels" in fused_supported(x, torch.zeros(3, 3), p, make_surrogate("atan"))
    assert "per-neuron" in fused_supported(
        x, torch.zeros(4, 4), LIFParams(torch.full((4,), 0.8), torch.tensor(1.0)), make_surrogate("atan")
    )
    with pytest.raises(ValueError, match="float32 or float64"):
        rlif_multistep_fast(x.half(), torch.zeros(4, 4).half(), None, p, make_surrogate("atan"))


def _blocks(dtype):
    torch.manual_seed(0)
    kw = dict(tau=20.0, dt=2.0, v_threshold=0.5)
    conv = SpikingConvBlock(2, 6, kw, recurrent=True, pool=torch.nn.MaxPool2d(2)).to(dtype)
    dense = SpikingDenseBlock(3, 7, kw, recurrent=True).to(dtype)
    g = torch.Generator().manual_seed(1)
    return [
        (conv, torch.rand(11, 2, 2, 6, 6, generator=g, dtype=dtype) * 3),
        (dense, torch.rand(13, 4, 3, generator=g, dtype=dtype) * 3),
    ]


def _block_run(block, x, backend, chunks=1):
    block.lif.backend = backend
    block.zero_grad()
    xr = x.clone().requires_grad_()
    outs, state = [], None
    for piece in xr.chunk(chunks, dim=0):
        y, state = block(piece, state)
        outs.append(y)
    y = torch.cat(outs)
    v, s_last = state
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward(retain_graph=True)
    (v.sum() + s_last.sum()).backward()
    grads = {n: p.grad.clone() for n, p in block.named_parameters() if p.grad is not None}
    return y.detach(), v.detach(), s_last.detach(), xr.grad, grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("chunks", [1, 3])
def test_recurrent_blocks_fused_equal_their_loop(dtype, chunks):
    for block, x in _blocks(dtype):
        block.train()
        ref = _block_run(block, x, "reference", chunks)
        fast = _block_run(block, x, "auto", chunks)
        tol = TOL[dtype]
        assert torch.equal(ref[0], fast[0]) and torch.equal(ref[2], fast[2])
        torch.testing.assert_close(fast[1], ref[1], **tol)
        torch.testing.assert_close(fast[3], ref[3], rtol=tol["rtol"], atol=tol["atol"] * 10)
        assert ref[4].keys() == fast[4].keys() and "recurrent.weight" in ref[4]
        for n in ref[4]:
            r = ref[4][n]
            torch.testing.assert_close(
                fast[4][n],
                r,
                rtol=tol["rtol"] * 10,
                atol=tol["atol"] * max(1, float(r.abs().max())) * 10,
                msg=lambda m, n=n: f"{n}: {m}",
            )


def test_blocks_take_the_fused_path_and_counters_see_the_recurrent_layer():
    (conv, x), (dense, xd) = _blocks(torch.float32)
    for block, inp in ((conv, x), (dense, xd)):
        block.eval()
        current = torch.stack([block.bn(block.conv(f)) for f in inp.unbind(0)])
        assert block._fuse_recurrence(current)
        # an operation counter hooks the recurrent layer: the block then steps bin by bin, so the
        # recurrent layer's operations are counted -- with the same output
        with torch.no_grad():
            y_fast, _ = block(inp)
            with OpCounter(block) as oc:
                y_loop, _ = block(inp)
        assert torch.equal(y_fast, y_loop)
        assert oc.layers["recurrent"].calls == inp.shape[0] - 1
        assert not block._fuse_recurrence(current[:1])  # one bin: nothing to fuse
