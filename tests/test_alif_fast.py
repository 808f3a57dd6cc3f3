"""The compiled adaptive-threshold LIF (numba) against its reference loop: spikes, final states and
every gradient (input, initial state, beta, threshold, rho)."""

import pytest
import torch

from mambaspike import kernels
from mambaspike.neurons.alif_fast import alif_multistep_fast
from mambaspike.neurons.functional import ALIFParams, ALIFState, alif_multistep
from mambaspike.neurons.modules import ALIF
from mambaspike.neurons.surrogate import make_surrogate

pytestmark = pytest.mark.skipif(not kernels.available("alif_numba"), reason="numba kernel unavailable")


def _run(backend, dtype, soft, detach, decay_input, surrogate, T=23, shape=(3, 70), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(T, *shape, generator=g, dtype=dtype) * 2.0 + 3.0).requires_grad_()
    v0 = (torch.randn(*shape, generator=g, dtype=dtype) * 0.4).requires_grad_()
    a0 = torch.rand(*shape, generator=g, dtype=dtype).requires_grad_()
    g_s = torch.randn(T, *shape, generator=g, dtype=dtype)
    g_v, g_a = torch.randn(*shape, generator=g, dtype=dtype), torch.randn(*shape, generator=g, dtype=dtype)
    beta = torch.tensor(0.8, dtype=dtype, requires_grad=True)
    vth = torch.tensor(1.0, dtype=dtype, requires_grad=True)
    rho = torch.tensor(0.9, dtype=dtype, requires_grad=True)
    p = ALIFParams(beta, vth, rho, 0.3, 0.0, soft, detach, decay_input)
    fn = make_surrogate(surrogate, None)
    if backend == "reference":
        s, st = alif_multistep(x, ALIFState(v0, a0), p, fn)
    else:
        s, st = alif_multistep_fast(x, ALIFState(v0, a0), p, fn, backend=backend)
    torch.autograd.backward([s, st.v, st.a], [g_s, g_v, g_a])
    return [s.detach(), st.v.detach(), st.a.detach()], [x.grad, v0.grad, a0.grad, beta.grad, vth.grad, rho.grad]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("surrogate", ["atan", "sigmoid", "fast-sigmoid", "triangle"])
def test_kernel_matches_the_reference_loop(dtype, soft, detach, surrogate):
    decay_input = surrogate != "sigmoid"  # both input forms, without doubling the grid
    out_ref, grad_ref = _run("reference", dtype, soft, detach, decay_input, surrogate)
    out, grad = _run("numba", dtype, soft, detach, decay_input, surrogate)
    spikes = out_ref[0]
    assert 0.1 < float(spikes.mean()) < 0.9  # the thresholds adapt: neither silent nor saturated
    assert float(out_ref[2].max()) > 1.0  # the adaptation trace accumulated over several spikes
    for a, b in zip(out_ref, out):
        assert torch.equal(a, b)  # spikes and final (v, a), bit for bit
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for name, a, b in zip(("x", "v0", "a0", "beta", "v_threshold", "rho"), grad_ref, grad):
        assert a is not None and b is not None, name
        assert float(a.abs().max()) > 0, name  # every gradient carries signal
        torch.testing.assert_close(b, a, **tol, msg=name)


def test_module_runs_the_kernel_on_auto_and_in_inference():
    torch.manual_seed(0)
    x = torch.randn(12, 2, 4, 5, 5) + 1.0
    auto, ref = ALIF(tau=20.0, dt=5.0), ALIF(tau=20.0, dt=5.0, backend="reference")
    with torch.no_grad():
        s, st = auto(x)
        s_ref, st_ref = ref(x)
    assert torch.equal(s, s_ref) and torch.equal(st.v, st_ref.v) and torch.equal(st.a, st_ref.a)
    # a second call continues from the state exactly as one call over both halves
    with torch.no_grad():
        s1, st1 = auto(x[:5])
        s2, st2 = auto(x[5:], st1)
    assert torch.equal(torch.cat([s1, s2]), s) and torch.equal(st2.a, st.a)
    assert "backend=auto" in repr(auto)


def test_explicit_kernel_refuses_what_it_cannot_run():
    x = torch.randn(5, 3)
    fn = make_surrogate("atan", None)
    per_neuron = ALIFParams(torch.full((3,), 0.8), torch.tensor(1.0), torch.tensor(0.9))
    with pytest.raises(ValueError, match=r"ALIF backend 'numba' cannot run this call: a per-neuron beta"):
        alif_multistep_fast(x, None, per_neuron, fn, backend="numba")
    with pytest.raises(ValueError, match=r"ALIF: unknown backend 'gpu'; expected one of auto, reference"):
        ALIF(backend="gpu")
    # auto falls back to the reference loop for it, with the same result
    s, st = alif_multistep_fast(x, None, per_neuron, fn)
    s_ref, _ = alif_multistep(x, None, per_neuron, fn)
    assert torch.equal(s, s_ref)


@pytest.mark.parametrize("dense", [False, True])
def test_recurrent_block_in_inference_matches_the_loop_over_bins(dense):
    from mambaspike.layers.blocks import SpikingConvBlock, SpikingDenseBlock

    torch.manual_seed(3)
    kw = dict(tau=20.0, dt=5.0, v_threshold=1.0, learn_tau=True)
    if dense:
        block = SpikingDenseBlock(6, 12, kw, recurrent=True, neuron="alif").eval()
        x = torch.randn(15, 4, 6) * 2 + 1
    else:
        block = SpikingConvBlock(2, 8, kw, recurrent=True, pool=torch.nn.Identity(), neuron="alif").eval()
        x = torch.randn(15, 3, 2, 6, 6) * 2 + 1
    with torch.no_grad():
        torch.nn.init.normal_(block.recurrent.weight, std=0.5)
        torch.nn.init.constant_(block.bn.weight, 5.0)  # drive the neurons to fire
        assert block._fuse_recurrence(block.bn(block.conv(x[0]))[None].expand(2, *x.shape[1:2], -1, *x.shape[3:]))
        fused, st = block(x)
        fused2, st2 = block(x[7:], block(x[:7])[1])  # continued from a state
        handle = block.recurrent.register_forward_hook(lambda *a: None)  # observed: the loop over bins
        assert not block._fuse_recurrence(x)
        loop, st_loop = block(x)
        handle.remove()
    assert 0.05 < float(loop.mean()) < 0.95
    assert torch.equal(fused, loop) and torch.equal(fused2, loop[7:])
    (v, a), s_last = st
    (v_l, a_l), s_l = st_loop
    torch.testing.assert_close(v, v_l, rtol=1e-5, atol=1e-5)
    assert torch.equal(a, a_l) and torch.equal(s_last, s_l) and torch.equal(st2[0].a, a_l)
    # training needs gradients: the bin-by-bin loop
    block.train()
    assert not block._fuse_recurrence(block.bn(block.conv(x[0]))[None].expand(2, *x.shape[1:2], -1, *x.shape[3:]))
