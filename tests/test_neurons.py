import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mambaspike.neurons import LIF, ATan, LIFParams, lif_multistep, lif_step


def test_lif_hand_computed_trajectory_hard_reset():
    # tau = dt / ln 2 -> beta = 0.5; decay_input: h = 0.5 v + 0.5 x
    lif = LIF(tau=1 / math.log(2), dt=1.0, v_threshold=1.0, learn_tau=False)
    assert float(lif.beta) == pytest.approx(0.5)
    x = torch.tensor([1.0, 1.0, 2.0, 0.0, 4.0]).view(5, 1)
    s, v = lif(x)
    # h: 0.5, 0.75, 1.375 (spike, reset 0), 0, 2.0 (spike, reset 0)
    assert s.view(-1).tolist() == [0, 0, 1, 0, 1]
    assert float(v) == 0.0
    _, v2 = lif(x[:2])
    assert float(v2) == pytest.approx(0.75)


def test_lif_soft_reset_and_undecayed_input():
    p = LIFParams(beta=torch.tensor(0.5), v_threshold=torch.tensor(1.0), soft_reset=True, decay_input=False)
    spike = ATan()
    v = torch.zeros(1)
    out, vs = [], []
    for x in [0.8, 0.8, 0.0]:
        s, v = lif_step(torch.tensor([x]), v, p, spike)
        out.append(float(s))
        vs.append(float(v))
    # h = 0.8 -> 0.4 + 0.8 = 1.2 spike -> 0.2 -> 0.1
    assert out == [0, 1, 0]
    assert vs == pytest.approx([0.8, 0.2, 0.1])


def test_atan_surrogate_gradient_value():
    x = torch.tensor([0.0, 0.5], requires_grad=True)
    ATan(alpha=2.0)(x).sum().backward()
    expected = [1.0 / (1 + (math.pi / 2 * 2 * v) ** 2) for v in (0.0, 0.5)]
    assert x.grad.tolist() == pytest.approx(expected)


def test_single_step_equals_multi_step():
    torch.manual_seed(0)
    lif = LIF(tau=20.0, dt=5.0, learn_threshold=True)
    x = torch.randn(12, 3, 4) * 2
    s_multi, v_multi = lif(x)
    v = None
    steps = []
    for xt in x.unbind(0):
        s, v = lif.step(xt, v)
        steps.append(s)
    assert torch.equal(torch.stack(steps), s_multi)
    assert torch.allclose(v, v_multi)
    # streaming in chunks continues the same trajectory
    s1, st1 = lif(x[:5])
    s2, _ = lif(x[5:], st1)
    assert torch.equal(torch.cat([s1, s2]), s_multi)


def test_tau_is_in_ms_and_learnable():
    a = LIF(tau=30.0, dt=10.0)
    b = LIF(tau=30.0, dt=1.0)
    assert a.tau == pytest.approx(30.0, rel=1e-5) and b.tau == pytest.approx(30.0, rel=1e-5)
    assert float(a.beta) == pytest.approx(math.exp(-10 / 30))
    x = torch.randn(8, 2, 5) + 1.0
    s, _ = a(x)
    s.sum().backward()
    assert a.w.grad is not None and a.w.grad != 0
    assert "spike_fn.alpha" in a.state_dict()  # surrogate sharpness travels with the weights


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 20), n=st.integers(1, 6), tau=st.floats(2.0, 100.0))
def test_zero_input_never_spikes(T, n, tau):
    s, v = LIF(tau=tau, dt=1.0)(torch.zeros(T, n))
    assert s.shape == (T, n) and s.sum() == 0 and torch.all(v == 0)


def test_multistep_reference_backward_matches_manual_unroll():
    torch.manual_seed(1)
    p = LIFParams(beta=torch.tensor(0.7), v_threshold=torch.tensor(1.0))
    x = torch.randn(6, 4, requires_grad=True)
    s, _ = lif_multistep(x * 3, None, p, ATan())
    s.sum().backward()
    g1 = x.grad.clone()
    x.grad = None
    v = torch.zeros(4)
    tot = 0
    for t in range(6):
        s_t, v = lif_step(x[t] * 3, v, p, ATan())
        tot = tot + s_t.sum()
    tot.backward()
    assert torch.allclose(g1, x.grad)
