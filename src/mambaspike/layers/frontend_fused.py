"""Inference forward of the dense spiking front-end in one compiled call.

:meth:`SpikingFrontEnd.forward <mambaspike.layers.frontend.SpikingFrontEnd.forward>` takes this path
when :func:`unsupported` finds nothing against it: 1-D input (dense blocks, Sequential MNIST, audio),
``LIF`` or ``ALIF`` neurons (mixed stacks too) with scalar parameters on the ``auto``/``numba``/``cpu``
backends, the membrane readout's non-spiking ``LeakyIntegrator`` as the last block too, BatchNorm in
eval mode with running statistics, CPU float32/float64, no autograd graph needed, and nothing
observing the blocks call by call (hooks of spike counters, tracing for export).
Otherwise, and always as the ground truth, the module-by-module forward
(:meth:`~mambaspike.layers.frontend.SpikingFrontEnd.forward_reference`) runs. States are those of the
reference: per block ``v`` (LIF, LeakyIntegrator) or ``ALIFState(v, a)`` (ALIF), the recurrent block's
(the last spiking one) paired with its last spikes, ``(v | ALIFState, s_prev)``.

The kernel (:mod:`mambaspike.kernels.frontend_numba`) reads every parameter and buffer from the modules on each call
(nothing is cached, so in-place changes, ``.data`` writes, replaced tensors and changed attributes such
as ``soft_reset``, ``adapt`` or ``bn.eps`` all take effect at once); the neurons' scalars are computed
by torch exactly as the reference computes them.
"""

from __future__ import annotations

import numpy as np
import torch

from mambaspike import kernels
from mambaspike.kernels.views import numpy_view
from mambaspike.layers.blocks import SpikingDenseBlock
from mambaspike.neurons.alif_fast import _scalars as alif_kernel_scalars
from mambaspike.neurons.functional import ALIFState
from mambaspike.neurons.lif_fast import kernel_scalars
from mambaspike.neurons.modules import ALIF, LIF, LeakyIntegrator


def unsupported(fe, x: torch.Tensor, state) -> str | None:
    """Why the fused inference forward cannot run ``fe(x, state)`` (``None`` when it can).

    Called on every forward: it reads the modules' ``_modules`` / ``_parameters`` dicts directly
    (``nn.Module.__getattr__`` and ``ModuleList.__getitem__`` cost microseconds each)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.dim() != 3:
        return "not a CPU float32/float64 [T, B, F] input"
    if x.shape[0] < 2 or x.shape[1] == 0:
        return "fewer than two bins or an empty batch"
    grad = torch.is_grad_enabled()
    if grad and x.requires_grad:
        return "an autograd graph is needed"
    if kernels.observed(fe):
        return "the blocks are observed call by call (hooks, tracing)"
    if fe.pool_after != 0:
        return "the temporal pooling follows a block other than the first (temporal_pool_after > 0)"
    n_rec = 0
    for b in fe._modules["blocks"]._modules.values():
        if type(b) is not SpikingDenseBlock:
            return "not a stack of dense blocks"
        mods = b._modules
        lif, bn, lin = mods["lif"], mods["bn"], mods["conv"]
        kind = type(lif)
        n_rec += mods.get("recurrent") is not None
        if n_rec > 1:
            return "more than one recurrent block"
        if kind is LeakyIntegrator:
            if lif._parameters.get("w", lif._buffers.get("w")).numel() != 1:
                return "per-neuron time constants of the leaky integrator"
        elif (kind is not LIF and kind is not ALIF) or lif.backend not in ("auto", "numba", "cpu"):
            return "not LIF, ALIF or leaky-integrator neurons on a fused backend"
        if type(bn) is not torch.nn.BatchNorm1d:
            return "a current norm other than BatchNorm (current_norm 'sample' or 'running')"
        if bn.training or bn._buffers.get("running_mean") is None or not bn.affine:
            return "BatchNorm in training mode, or without running statistics or affine parameters"
        if lin._parameters["weight"].dtype != x.dtype or lin._parameters.get("bias") is not None:
            return "weights of another dtype, or a Linear bias"
        if kind is not LeakyIntegrator:
            if lif._parameters.get("w", lif._buffers.get("w")).numel() != 1:
                return "per-neuron LIF parameters"
            vth = lif._parameters.get("v_threshold", lif._buffers.get("v_threshold"))
            if vth.numel() != 1:
                return "per-neuron LIF parameters"
        if kind is ALIF and lif._parameters.get("w_adapt", lif._buffers.get("w_adapt")).numel() != 1:
            return "per-neuron ALIF parameters"
        params = (p for m in mods.values() if m is not None for p in m._parameters.values() if p is not None)
        if grad and any(p.requires_grad for p in params):
            return "an autograd graph is needed"
    if state is not None:
        why = _state_unsupported(fe, state, grad)
        if why is not None:
            return why
    if not kernels.available("frontend_numba"):
        return f"the kernel is unavailable ({kernels.reason('frontend_numba')})"
    return None


def _tensors(s):
    """The tensors of one block's state (nested tuples flattened, ``None`` skipped)."""
    if isinstance(s, tuple):
        for t in s:
            yield from _tensors(t)
    elif s is not None:
        yield s


def _state_unsupported(fe, state, grad: bool) -> str | None:
    """Why the given per-block states keep the fused path from running (``None`` when they do not):
    one that needs a gradient, or one of another form than its block's neuron keeps (the LIF's and the
    leaky integrator's ``v``, the ALIF's ``ALIFState(v, a)``; the recurrent block's paired with ``s_prev``)."""
    blocks = fe._modules["blocks"]._modules.values()
    for b, s in zip(blocks, state):
        if grad and any(t.requires_grad for t in _tensors(s)):
            return "an autograd graph is needed"
        if b._modules.get("recurrent") is not None:
            if s is None:
                continue
            if not isinstance(s, tuple) or len(s) != 2:
                return "a recurrent block's state that is not a (neuron state, s_prev) pair"
            s = s[0]
        if s is None:
            continue
        if type(b._modules["lif"]) is ALIF:
            if not isinstance(s, tuple) or len(s) != 2 or s[0] is None or s[1] is None:
                return "an ALIF block's state that is not an ALIFState(v, a)"
        elif not torch.is_tensor(s):
            return "a LIF or leaky-integrator block's state that is not a tensor"
    return None


_SCALARS: dict = {}


def _memoised(key: tuple, compute):
    """``compute()``, memoised under ``key`` (the values it depends on, read on every call, so never
    stale; the memo is emptied past 4096 entries)."""
    out = _SCALARS.get(key)
    if out is None:
        out = compute()
        if len(_SCALARS) > 4096:
            _SCALARS.clear()
        _SCALARS[key] = out
    return out


def _lif_scalars(neuron: LIF, dtype) -> tuple:
    """``(beta, input gain, threshold, v_reset, rho = 0, adapt = 0, soft)`` of a LIF for the kernel, as
    :func:`mambaspike.neurons.lif_fast.kernel_scalars` computes them (torch's sigmoid, ``1 - beta`` in beta's
    dtype)."""
    w, vth = neuron.w, neuron.v_threshold
    key = (w.item(), w.dtype, vth.item(), vth.dtype, bool(neuron.decay_input), dtype)

    def compute():
        p = neuron.params()
        return kernel_scalars(p.beta, p.v_threshold, p.decay_input, dtype)

    return (*_memoised(key, compute), neuron.v_reset, 0.0, 0.0, neuron.soft_reset)


def _alif_scalars(neuron: ALIF, dtype) -> tuple:
    """``(beta, input gain, threshold, v_reset, rho, adapt, soft)`` of an ALIF for the kernel, as
    :func:`mambaspike.neurons.alif_fast._scalars` computes them (torch's sigmoids of ``w`` and
    ``w_adapt``)."""
    w, wa, vth = neuron.w, neuron.w_adapt, neuron.v_threshold
    key = (w.item(), w.dtype, wa.item(), wa.dtype, vth.item(), vth.dtype, float(neuron.adapt))
    key += (bool(neuron.decay_input), dtype)
    b, c, vth, rho, adapt = _memoised(key, lambda: alif_kernel_scalars(neuron.params(), dtype))
    return (b, c, vth, neuron.v_reset, rho, adapt, neuron.soft_reset)


def _integrator_scalars(neuron: LeakyIntegrator, dtype) -> tuple:
    """``(beta, input gain, threshold = 0, v_0 = 0, rho = 0, adapt = 0, soft = False)`` of a leaky
    integrator for the kernel: ``beta = sigmoid(w)`` and ``1 - beta`` in beta's dtype, as
    :meth:`LeakyIntegrator._update <mambaspike.neurons.LeakyIntegrator>` computes them; its state starts
    at 0."""
    w = neuron.w
    key = ("li", w.item(), w.dtype, bool(neuron.decay_input), dtype)

    def compute():
        beta = neuron.beta.detach()
        gain = (1 - beta).to(dtype).item() if neuron.decay_input else 1.0
        return beta.to(dtype).item(), gain

    return (*_memoised(key, compute), 0.0, 0.0, 0.0, 0.0, False)


def forward(fe, x: torch.Tensor, state=None):
    """``fe(x, state)`` for a front-end :func:`unsupported` accepts: same outputs and states."""
    k = kernels.load("frontend_numba")
    dtype = x.dtype
    T, B, _ = x.shape
    ws, means, variances, gammas, betas, eps, scalars, adaptive, integrator = [], [], [], [], [], [], [], [], []
    blocks = list(fe._modules["blocks"]._modules.values())
    rec_layer = -1
    for i, b in enumerate(blocks):
        mods = b._modules
        bn, lif = mods["bn"], mods["lif"]
        ws.append(numpy_view(mods["conv"]._parameters["weight"], dtype))
        means.append(numpy_view(bn._buffers["running_mean"], dtype))
        variances.append(numpy_view(bn._buffers["running_var"], dtype))
        gammas.append(numpy_view(bn._parameters["weight"], dtype))
        betas.append(numpy_view(bn._parameters["bias"], dtype))
        eps.append(bn.eps)
        alif, li = type(lif) is ALIF, type(lif) is LeakyIntegrator
        adaptive.append(alif)
        integrator.append(li)
        if mods.get("recurrent") is not None:
            rec_layer = i
        if li:
            scalars.append(_integrator_scalars(lif, dtype))
        else:
            scalars.append(_alif_scalars(lif, dtype) if alif else _lif_scalars(lif, dtype))
    n_outs = [w.shape[0] for w in ws]
    n_last = n_outs[-1]
    has_rec = rec_layer >= 0
    n_rec = n_outs[rec_layer] if has_rec else 1
    rec = blocks[rec_layer].recurrent if has_rec else None
    r_w = numpy_view(rec._parameters["weight"], dtype) if has_rec else ws[-1][:1, :1]
    lifp = np.array([q[:6] for q in scalars], dtype=ws[0].dtype)  # (L, 6): beta, gain, vth, v_reset, rho, adapt
    # (3, L): soft reset, ALIF, leaky integrator
    flags = np.array([[q[6] for q in scalars], adaptive, integrator], dtype=np.bool_)
    any_alif = any(adaptive)
    # states in: per block v (LIF) or ALIFState(v, a) (ALIF) -- paired with s_prev for the recurrent
    # block -- packed into v_state and a_state (none without an ALIF block: the kernel gets [B, 0])
    v_state = x.new_empty(B, sum(n_outs))  # fresh: the kernel writes them
    a_state = x.new_empty(B, sum(n_outs)) if any_alif else None
    s_prev = x.new_empty(B, n_rec)
    init_v, has_s0 = True, False
    if state is not None:
        v_parts, a_parts = [], []
        for i, n in enumerate(n_outs):
            s = state[i]
            if i == rec_layer:
                s, sp = s if s is not None else (None, None)
                if sp is not None:
                    s_prev.copy_(sp.reshape(B, n_rec))
                    has_s0 = True
            v, a = s if adaptive[i] and s is not None else (s, None)
            v0 = 0.0 if integrator[i] else blocks[i].lif.v_reset
            v_parts.append(v.reshape(B, n) if v is not None else x.new_full((B, n), v0))
            if any_alif:
                a_parts.append(a.reshape(B, n) if a is not None else x.new_zeros(B, n))
        torch.cat(v_parts, dim=1, out=v_state)
        if any_alif:
            torch.cat(a_parts, dim=1, out=a_state)
        init_v = False
    kp = fe.temporal_pool
    out = x.new_empty((T + kp - 1) // kp, B, n_last)
    k.dense_frontend(
        x.contiguous().numpy(),
        tuple(ws),
        tuple(means),
        tuple(variances),
        tuple(gammas),
        tuple(betas),
        np.array(eps, dtype=np.float64),
        lifp,
        flags,
        r_w,
        rec_layer,
        kp,
        fe.temporal_pool_mode == "avg",
        v_state.numpy(),
        a_state.numpy() if any_alif else np.empty((B, 0), ws[0].dtype),
        init_v,
        s_prev.numpy(),
        has_s0,
        out.numpy(),
        0,
        B,
    )
    states = list(v_state.split(n_outs, dim=1))
    if any_alif:
        for i, a in enumerate(a_state.split(n_outs, dim=1)):
            if adaptive[i]:
                states[i] = ALIFState(states[i], a)
    if has_rec:
        states[rec_layer] = (states[rec_layer], s_prev)
    return out, states
