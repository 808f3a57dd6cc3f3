"""Our neurons against snnTorch (``Leaky``, ``Synaptic``) and spikingjelly (``LIFNode``,
``ParametricLIFNode``) at matching settings: spikes, membrane traces and gradients.

Test-only dependencies: snnTorch from the ``test`` extra, spikingjelly installed with ``--no-deps``
(``requirements-nodeps.txt``, see ``.ci/run``). Each test is skipped where its library is absent.

Matching settings:
- snnTorch ``Leaky(reset_delay=False)`` is our LIF with ``decay_input=False`` (``h = beta*v + x``),
  ``"subtract"`` = soft reset, ``"zero"`` = hard reset to 0, arctan surrogate with ``alpha = 2``, reset
  not detached. snnTorch fires on ``h > threshold`` (we fire on ``>=``) and resets at most once per
  step; inputs in (-1, 1) keep the potential after a reset below threshold, where both agree.
  ``Synaptic(alpha, beta)`` is our ``SynapticLIF`` with ``decay_input=False``, ``beta_syn = alpha``.
- spikingjelly's ``LIFNode(tau)`` charges ``h = v + (x - v) / tau``: our LIF with
  ``beta = 1 - 1 / tau`` (``decay_input=True``); ``ParametricLIFNode`` learns ``1 / tau = sigmoid(w_sj)``,
  so our ``w = -w_sj`` and ``dL/dw = -dL/dw_sj``.
"""

import math

import pytest
import torch

from mambaspike.neurons.modules import LIF, SynapticLIF


def _lif_for_beta(beta: float, **kw) -> LIF:
    lif = LIF(tau=10.0, dt=1.0, **kw)
    with torch.no_grad():
        lif.w.fill_(math.log(beta / (1 - beta)))
    return lif


def _step_trace(neuron, x):
    """Spikes and the state after every step, stepping ``neuron.step`` over ``x [T, ...]``."""
    state, spikes, states = None, [], []
    for xt in x.unbind(0):
        s, state = neuron.step(xt, state)
        spikes.append(s)
        states.append(state)
    return torch.stack(spikes), states


# ---- snnTorch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_snntorch_leaky(reset, backend):
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    T, shape = 60, (4, 32)
    x = torch.rand(T, *shape) * 1.7 - 0.75  # (-0.75, 0.95)
    ours = _lif_for_beta(
        0.9,
        soft_reset=reset == "subtract",
        decay_input=False,
        learn_threshold=True,
        surrogate="atan",
        alpha=2.0,
        backend=backend,
    )
    leaky = snn.Leaky(
        beta=ours.beta.detach().clone(),
        threshold=1.0,
        spike_grad=snn.surrogate.atan(alpha=2.0),
        learn_beta=True,
        learn_threshold=True,
        reset_mechanism=reset,
        reset_delay=False,
    )

    xs = x.clone().requires_grad_()
    mem, spk, mems = torch.zeros(shape), [], []
    for xt in xs.unbind(0):
        s, mem = leaky(xt, mem)
        spk.append(s)
        mems.append(mem)
    spk = torch.stack(spk)

    xo = x.clone().requires_grad_()
    s_ours, v_ours = ours(xo)
    assert 0.05 < s_ours.mean() < 0.5
    assert torch.equal(s_ours, spk)
    torch.testing.assert_close(v_ours, mems[-1], rtol=1e-6, atol=1e-6)
    s_steps, states = _step_trace(ours, x)
    assert torch.equal(s_steps, spk)
    torch.testing.assert_close(torch.stack(states), torch.stack(mems).detach(), rtol=1e-6, atol=1e-6)

    g = torch.randn(T, *shape)
    (spk * g).sum().backward()
    (s_ours * g).sum().backward()
    torch.testing.assert_close(xo.grad, xs.grad, rtol=1e-5, atol=1e-6)
    beta = float(ours.beta.detach())
    torch.testing.assert_close(ours.w.grad / (beta * (1 - beta)), leaky.beta.grad.reshape(()), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.v_threshold.grad, leaky.threshold.grad.reshape(()), rtol=1e-5, atol=1e-6)


def test_snntorch_synaptic():
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(1)
    T, shape = 50, (3, 20)
    # the current stays below 1.1, so the potential after a reset stays below threshold (see above)
    x = torch.rand(T, *shape) * 0.6 - 0.18
    ours = SynapticLIF(tau=10.0, dt=1.0, tau_syn=2.0, soft_reset=True, decay_input=False)
    syn = snn.Synaptic(
        alpha=ours.beta_syn.detach().clone(),
        beta=ours.beta.detach().clone(),
        threshold=1.0,
        spike_grad=snn.surrogate.atan(alpha=2.0),
        reset_mechanism="subtract",
        reset_delay=False,
    )

    xs = x.clone().requires_grad_()
    cur, mem = torch.zeros(shape), torch.zeros(shape)
    spk, curs, mems = [], [], []
    for xt in xs.unbind(0):
        s, cur, mem = syn(xt, cur, mem)
        spk.append(s)
        curs.append(cur)
        mems.append(mem)
    spk = torch.stack(spk)

    xo = x.clone().requires_grad_()
    s_ours, _ = ours(xo)
    assert 0.02 < s_ours.mean() < 0.8
    assert torch.equal(s_ours, spk)
    s_steps, states = _step_trace(ours, x)
    assert torch.equal(s_steps, spk)
    torch.testing.assert_close(torch.stack([st.v for st in states]), torch.stack(mems).detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(torch.stack([st.i for st in states]), torch.stack(curs).detach(), rtol=1e-6, atol=1e-6)
    g = torch.randn(T, *shape)
    (spk * g).sum().backward()
    (s_ours * g).sum().backward()
    torch.testing.assert_close(xo.grad, xs.grad, rtol=1e-5, atol=1e-6)


# ---- spikingjelly -----------------------------------------------------------------------------


def _sj():
    pytest.importorskip("spikingjelly")
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate
    except ImportError as e:  # spikingjelly present without a dependency it imports
        pytest.skip(f"spikingjelly does not import: {e}")
    return functional, neuron, surrogate


@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_spikingjelly_lifnode(v_reset, detach_reset, backend):
    functional, neuron, surrogate = _sj()
    torch.manual_seed(2)
    dtype = torch.float64
    tau_sj, T, shape = 4.0, 40, (3, 25)
    x = torch.randn(T, *shape, dtype=dtype) * 1.5 + 0.8
    node = neuron.LIFNode(
        tau=tau_sj,
        decay_input=True,
        v_threshold=1.0,
        v_reset=v_reset,
        surrogate_function=surrogate.ATan(alpha=2.0),
        detach_reset=detach_reset,
        step_mode="m",
        store_v_seq=True,
    )
    ours = _lif_for_beta(
        1 - 1 / tau_sj, soft_reset=v_reset is None, detach_reset=detach_reset, learn_tau=False, backend=backend
    ).double()
    with torch.no_grad():  # exactly the same decay, not a float32 logit of it
        ours.w.copy_(torch.logit(torch.tensor(1 - 1 / tau_sj, dtype=dtype)))

    xs = x.clone().requires_grad_()
    functional.reset_net(node)
    spk = node(xs)
    v_seq = node.v_seq
    xo = x.clone().requires_grad_()
    s_ours, v_ours = ours(xo)
    assert 0.05 < s_ours.mean() < 0.6
    assert torch.equal(s_ours, spk.to(dtype))
    torch.testing.assert_close(v_ours, v_seq[-1].to(dtype), rtol=1e-10, atol=1e-10)
    _, states = _step_trace(ours, x)
    torch.testing.assert_close(torch.stack(states), v_seq.detach().to(dtype), rtol=1e-10, atol=1e-10)
    g = torch.randn(T, *shape, dtype=dtype)
    (spk * g).sum().backward()
    (s_ours * g).sum().backward()
    torch.testing.assert_close(xo.grad, xs.grad.to(dtype), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_spikingjelly_parametric_lifnode(backend):
    functional, neuron, surrogate = _sj()
    torch.manual_seed(3)
    dtype = torch.float64
    T, shape = 30, (2, 40)
    x = torch.randn(T, *shape, dtype=dtype) * 1.5 + 0.8
    node = neuron.ParametricLIFNode(
        init_tau=3.0,
        decay_input=True,
        v_threshold=1.0,
        v_reset=0.0,
        surrogate_function=surrogate.ATan(alpha=2.0),
        step_mode="m",
    ).to(dtype)
    ours = LIF(tau=10.0, dt=1.0, backend=backend).double()
    with torch.no_grad():
        ours.w.copy_(-node.w.detach())  # beta = 1 - sigmoid(w_sj) = sigmoid(-w_sj)

    xs = x.clone().requires_grad_()
    functional.reset_net(node)
    spk = node(xs)
    xo = x.clone().requires_grad_()
    s_ours, _ = ours(xo)
    assert 0.05 < s_ours.mean() < 0.6
    assert torch.equal(s_ours, spk.to(dtype))
    g = torch.randn(T, *shape, dtype=dtype)
    (spk * g).sum().backward()
    (s_ours * g).sum().backward()
    torch.testing.assert_close(xo.grad, xs.grad.to(dtype), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.w.grad, -node.w.grad.reshape(ours.w.shape).to(dtype), rtol=1e-10, atol=1e-10)
