"""The fused inference forward of MambaBlock (numba kernels) against the reference forward: outputs,
returned states, chunked sequences; and that it is never taken when a graph is needed."""

import pytest
import torch

from mambaspike.ssm import mamba as mamba_mod
from mambaspike.ssm.mamba import MambaBackbone, MambaBlock, MambaConfig

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def make_block(d_model, d_state, d_conv, dtype, seed=0):
    """A block with every parameter perturbed away from its initialisation, and dt biases that put
    softplus's argument on both sides of its threshold (20)."""
    torch.manual_seed(seed)
    blk = MambaBlock(MambaConfig(d_model=d_model, d_state=d_state, d_conv=d_conv)).to(dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in blk.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=dtype))
        bias = blk.dt_proj.bias
        bias.copy_(3 * torch.randn(bias.shape, generator=g, dtype=dtype) - 3)
        bias[:2] = 25.0
    return blk


def assert_close(a, b, dtype):
    tol = TOL[dtype]
    scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
    torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale)


def fused_kernels_used(blk, x, state=None):
    return mamba_mod._fused_kernels(blk, x, state) is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d_model,d_state", [(16, 16), (24, 1)])
@pytest.mark.parametrize("d_conv", [2, 4])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("L", [1, 2, 5, 64])
def test_fused_equals_reference(dtype, d_model, d_state, d_conv, B, L):
    blk = make_block(d_model, d_state, d_conv, dtype)
    g = torch.Generator().manual_seed(L * 10 + B)
    x = torch.randn(B, L, d_model, generator=g, dtype=dtype)
    state0 = (
        torch.randn(B, blk.cfg.d_inner, d_conv - 1, generator=g, dtype=dtype),
        torch.randn(B, blk.cfg.d_inner, d_state, generator=g, dtype=dtype),
    )
    with torch.no_grad():
        assert fused_kernels_used(blk, x)
        for state in (None, state0):
            y, (conv, ssm) = blk(x, state)
            y_ref, (conv_ref, ssm_ref) = blk.forward_reference(x, state)
            assert y.dtype == conv.dtype == ssm.dtype == dtype
            assert_close(y, y_ref, dtype)
            assert_close(conv, conv_ref, dtype)
            assert_close(ssm, ssm_ref, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cut", [1, 3, 40])
def test_fused_chunks_equal_whole_sequence(dtype, cut):
    blk = make_block(24, 16, 4, dtype, seed=1)
    x = torch.randn(3, 64, 24, dtype=dtype)
    with torch.no_grad():
        y, (conv, ssm) = blk(x)
        y1, s1 = blk(x[:, :cut])
        y2, (conv2, ssm2) = blk(x[:, cut:], s1)
    assert_close(torch.cat([y1, y2], 1), y, dtype)
    assert_close(conv2, conv, dtype)
    assert_close(ssm2, ssm, dtype)


def test_fused_independent_of_thread_count():
    """The kernels run on the calling thread; torch's GEMMs around them on 1 or 3 threads."""
    blk = make_block(128, 16, 4, torch.float32)
    x = torch.randn(2, 196, 128)
    threads = torch.get_num_threads()
    try:
        with torch.no_grad():
            torch.set_num_threads(1)
            y1, (c1, s1) = blk(x)
            torch.set_num_threads(3)
            y3, (c3, s3) = blk(x)
            y_ref, (c_ref, s_ref) = blk.forward_reference(x)
    finally:
        torch.set_num_threads(threads)
    for y, c, s in ((y1, c1, s1), (y3, c3, s3)):  # the GEMMs round differently on 1 and 3 threads
        assert_close(y, y_ref, torch.float32)
        assert_close(c, c_ref, torch.float32)
        assert_close(s, s_ref, torch.float32)


def test_graph_needed_takes_the_reference_path():
    blk = make_block(16, 4, 4, torch.float32)
    x = torch.randn(2, 7, 16)
    assert not fused_kernels_used(blk, x)  # grad mode on, parameters require grad
    assert not fused_kernels_used(blk, x.requires_grad_(False).double())  # dtype differs from the weights
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        assert not fused_kernels_used(blk, x)
    blk.requires_grad_(False)
    assert fused_kernels_used(blk, x)  # nothing requires grad: no graph
    xg = x.clone().requires_grad_()
    assert not fused_kernels_used(blk, xg)
    blk.requires_grad_(True)
    ref = MambaBlock(MambaConfig(d_model=16, d_state=4, scan_backend="reference"))
    ref.load_state_dict(blk.state_dict())
    assert not fused_kernels_used(ref, x)

    y, _ = blk(x)
    y.square().sum().backward()
    y_ref, _ = ref.forward_reference(x)
    y_ref.square().sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for (name, p), p_ref in zip(blk.named_parameters(), ref.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_backbone_step_equals_fused_forward():
    torch.manual_seed(0)
    bb = MambaBackbone(MambaConfig(d_model=24, n_layers=2, d_state=16)).eval()
    x = torch.randn(2, 13, 24)
    with torch.no_grad():
        assert fused_kernels_used(bb.layers[0].mixer, x)
        y, states = bb(x)
        y1, state = bb(x[:, :6])
        ys = [y1]
        for x_t in x[:, 6:].unbind(1):
            y_t, state = bb.step(x_t, state)
            ys.append(y_t[:, None])
    torch.testing.assert_close(torch.cat(ys, 1), y, atol=1e-5, rtol=1e-5)
    for (c, s), (c_ref, s_ref) in zip(state, states):
        torch.testing.assert_close(c, c_ref, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(s, s_ref, atol=1e-5, rtol=1e-5)


def test_without_kernels_the_reference_path_runs(monkeypatch):
    monkeypatch.setenv("MAMBASPIKE_KERNELS", "off")
    blk = make_block(16, 4, 4, torch.float32)
    x = torch.randn(2, 7, 16)
    with torch.no_grad():
        assert not fused_kernels_used(blk, x)
        y, (conv, ssm) = blk(x)
        y_ref, (conv_ref, ssm_ref) = blk.forward_reference(x)
    assert torch.equal(y, y_ref) and torch.equal(conv, conv_ref) and torch.equal(ssm, ssm_ref)


@pytest.mark.parametrize(
    "cfg", [MambaConfig(d_model=8, d_conv=1), MambaConfig(d_model=4, d_state=3, d_conv=3, bias=True, conv_bias=False)]
)
def test_fused_edge_configs(cfg):
    """No conv state (d_conv 1), Linear biases and no conv bias, fewer channels than a vector."""
    torch.manual_seed(0)
    blk = MambaBlock(cfg)
    x = torch.randn(2, 5, cfg.d_model)
    with torch.no_grad():
        y, (conv, ssm) = blk(x)
        y_ref, (conv_ref, ssm_ref) = blk.forward_reference(x)
        y2, _ = blk(x[:, 2:], blk(x[:, :2])[1])
    assert conv.shape == conv_ref.shape
    for a, b in ((y, y_ref), (conv, conv_ref), (ssm, ssm_ref), (y2, y[:, 2:])):
        assert_close(a, b, torch.float32)


def test_kernel_parameters_follow_every_kind_of_change():
    """The kernels read dt_proj, A_log, D from the live parameters on every call: in-place changes,
    ``.data`` writes (no version bump), replaced tensors and loaded state dicts all take effect."""
    blk = make_block(16, 4, 4, torch.float32)
    x = torch.randn(2, 9, 16)
    with torch.no_grad():
        blk(x)  # fills the cache
        blk.A_log.add_(0.3)
        blk.D.mul_(-2.0)
        blk.dt_proj.weight.mul_(1.5)
        blk.dt_proj.bias.sub_(0.2)
        assert_close(blk(x)[0], blk.forward_reference(x)[0], torch.float32)
        before = blk(x)[0]
        blk.A_log.data.mul_(0.5)
        blk.dt_proj.weight.data.mul_(2.0)
        after = blk(x)[0]
        assert not torch.allclose(after, before)
        assert_close(after, blk.forward_reference(x)[0], torch.float32)
        blk.A_log = torch.nn.Parameter(blk.A_log + 0.1)  # a new tensor object
        blk.load_state_dict(make_block(16, 4, 4, torch.float32, seed=5).state_dict())
        assert_close(blk(x)[0], blk.forward_reference(x)[0], torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backbone_fused_equals_reference(dtype, monkeypatch):
    """The whole fused backbone (RMSNorm kernel, mixer kernels, residual added by out_proj's GEMM)
    against the module-by-module forward, from rest and continuing from a state."""
    torch.manual_seed(3)
    bb = MambaBackbone(MambaConfig(d_model=24, n_layers=3, d_state=8)).to(dtype).eval()
    with torch.no_grad():
        for p in bb.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 17, 24, dtype=dtype)
    norms = []
    real = mamba_mod._rmsnorm
    monkeypatch.setattr(mamba_mod, "_rmsnorm", lambda *a: norms.append(1) or real(*a))
    with torch.no_grad():
        y, states = bb(x)
        y2, _ = bb(x[:, 9:], bb(x[:, :9])[1])
    assert len(norms) == 3 * 4  # three layers and the final norm, three forwards
    monkeypatch.setenv("MAMBASPIKE_KERNELS", "off")
    with torch.no_grad():
        y_ref, states_ref = bb(x)
    assert_close(y, y_ref, dtype)
    assert_close(y2, y[:, 9:], dtype)
    for (c, s), (c_ref, s_ref) in zip(states, states_ref):
        assert_close(c, c_ref, dtype)
        assert_close(s, s_ref, dtype)
