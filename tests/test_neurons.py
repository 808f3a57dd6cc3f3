import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mambaspike.neurons.functional import (
    ALIFParams,
    ALIFState,
    LIFParams,
    SRMParams,
    SRMState,
    SynapticParams,
    SynapticState,
    alif_step,
    lif_multistep,
    lif_step,
    srm_kernels,
    srm_multistep,
    srm_step,
    synaptic_step,
)
from mambaspike.neurons.modules import ALIF, LIF, NEURONS, SRM, SpikingNeuron, SynapticLIF
from mambaspike.neurons.surrogate import SURROGATES, ATan, FastSigmoid, Sigmoid, Triangle, make_surrogate

HALF = torch.tensor(0.5)
ONE = torch.tensor(1.0)


def run_steps(step, xs, state, p, spike_fn=None):
    """Step a functional core over a list of scalars; returns (spikes, states)."""
    spike_fn = spike_fn or ATan()
    spikes, states = [], []
    for x in xs:
        s, state = step(torch.tensor([float(x)]), state, p, spike_fn)
        spikes.append(float(s))
        states.append(state)
    return spikes, states


# ---- LIF ----------------------------------------------------------------------------------


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
    p = LIFParams(beta=HALF, v_threshold=ONE, soft_reset=True, decay_input=False)
    spikes, vs = run_steps(lif_step, [0.8, 0.8, 0.0], torch.zeros(1), p)
    # h = 0.8 -> 0.4 + 0.8 = 1.2 spike -> 0.2 -> 0.1
    assert spikes == [0, 1, 0]
    assert [float(v) for v in vs] == pytest.approx([0.8, 0.2, 0.1])


def test_lif_hard_reset_to_v_reset_and_threshold_is_inclusive():
    p = LIFParams(beta=HALF, v_threshold=ONE, v_reset=-0.5, decay_input=False)
    spikes, vs = run_steps(lif_step, [1.0, 0.5, 1.5], torch.zeros(1), p)
    # h = 1.0 (>= threshold: spike, v = -0.5) -> -0.25 + 0.5 = 0.25 -> 0.125 + 1.5 = 1.625 spike
    assert spikes == [1, 0, 1]
    assert [float(v) for v in vs] == pytest.approx([-0.5, 0.25, -0.5])


@pytest.mark.parametrize("soft", [False, True])
def test_detach_reset_gradient_by_hand(soft):
    # one step from v = 0 with x = 1.5: h = 1.5 spikes (u = h - 1 = 0.5)
    sg = 1 / (1 + (math.pi / 2 * 2 * 0.5) ** 2)  # atan surrogate at u = 0.5, alpha = 2
    for detach, expected in [(True, 1.0 if soft else 0.0), (False, (1 - sg) if soft else -1.5 * sg)]:
        p = LIFParams(beta=HALF, v_threshold=ONE, soft_reset=soft, detach_reset=detach, decay_input=False)
        x = torch.tensor([1.5], requires_grad=True)
        _, v = lif_step(x, torch.zeros(1), p, ATan())
        v.sum().backward()
        # soft: v = h - s;  hard: v = h (1 - s), dv/dh = (1 - s) - h * sg
        assert float(x.grad) == pytest.approx(expected)


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
    assert float(a.beta.detach()) == pytest.approx(math.exp(-10 / 30))
    x = torch.randn(8, 2, 5) + 1.0
    s, _ = a(x)
    s.sum().backward()
    assert a.w.grad is not None and a.w.grad != 0
    assert "spike_fn.alpha" in a.state_dict()  # surrogate sharpness travels with the weights


def test_learnable_threshold_gets_a_gradient():
    lif = LIF(tau=10.0, learn_threshold=True)
    s, _ = lif(torch.randn(10, 4, 3) + 1.0)
    s.sum().backward()
    assert lif.v_threshold.grad is not None and lif.v_threshold.grad != 0
    assert [n for n, _ in lif.named_parameters()] == ["w", "v_threshold"]


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


# ---- surrogates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, alpha, formula",
    [
        (ATan, 2.0, lambda x, a: a / 2 / (1 + (math.pi / 2 * a * x) ** 2)),
        (Sigmoid, 4.0, lambda x, a: a / (1 + math.exp(-a * x)) * (1 - 1 / (1 + math.exp(-a * x)))),
        (FastSigmoid, 25.0, lambda x, a: 1 / (1 + a * abs(x)) ** 2),
        (Triangle, 1.0, lambda x, a: a * max(0.0, 1 - a * abs(x))),
    ],
)
def test_surrogate_forward_is_heaviside_and_gradient_matches_formula(cls, alpha, formula):
    xs = [-1.5, -0.3, 0.0, 0.2, 0.9]
    for a in (alpha, 0.5 * alpha):
        f = cls(a)
        assert float(f.alpha) == a and "alpha" in f.state_dict()
        x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
        y = f(x)
        assert y.tolist() == [0, 0, 1, 1, 1]  # H(x) = [x >= 0]
        y.sum().backward()
        assert x.grad.tolist() == pytest.approx([formula(v, a) for v in xs], rel=1e-12)
    assert cls().alpha == alpha  # default sharpness


def test_surrogates_by_name_and_sharpness_in_state_dict():
    assert set(SURROGATES) == {"atan", "sigmoid", "fast-sigmoid", "triangle"}
    assert isinstance(make_surrogate("fast_sigmoid"), FastSigmoid)
    with pytest.raises(ValueError, match="unknown surrogate"):
        make_surrogate("relu")
    lif = LIF(surrogate="triangle", alpha=0.5)
    sd = lif.state_dict()
    assert float(sd["spike_fn.alpha"]) == 0.5
    other = LIF(surrogate="triangle")
    other.load_state_dict(sd)
    assert float(other.spike_fn.alpha) == 0.5


# ---- adaptive threshold, synaptic, SRM: hand-computed trajectories --------------------------


def test_alif_hand_computed_trajectory():
    p = ALIFParams(beta=HALF, v_threshold=ONE, rho=HALF, adapt=0.5, decay_input=False)
    state = ALIFState(torch.zeros(1), torch.zeros(1))
    spikes, states = run_steps(alif_step, [1.2, 1.2, 1.2, 0.0, 1.2], state, p)
    # t0: h 1.2 >= theta 1       spike, v 0,   a 1
    # t1: h 1.2 <  theta 1.5     -      v 1.2, a 0.5
    # t2: h 1.8 >= theta 1.25    spike, v 0,   a 1.25
    # t3: h 0   <  theta 1.625   -      v 0,   a 0.625
    # t4: h 1.2 <  theta 1.3125  -      v 1.2, a 0.3125
    assert spikes == [1, 0, 1, 0, 0]
    assert [float(s.v) for s in states] == pytest.approx([0, 1.2, 0, 0, 1.2])
    assert [float(s.a) for s in states] == pytest.approx([1, 0.5, 1.25, 0.625, 0.3125])
    # the plain LIF fires on every input of 1.2
    lif_spikes, _ = run_steps(
        lif_step, [1.2, 1.2, 1.2, 0.0, 1.2], torch.zeros(1), LIFParams(HALF, ONE, decay_input=False)
    )
    assert lif_spikes == [1, 1, 1, 0, 1]


def test_synaptic_hand_computed_trajectory():
    p = SynapticParams(beta=HALF, beta_syn=HALF, v_threshold=ONE, decay_input=False)
    state = SynapticState(torch.zeros(1), torch.zeros(1))
    spikes, states = run_steps(synaptic_step, [1.0, 0.0, 0.0, 1.0], state, p)
    # i: 1, .5, .25, 1.125;  h: 1 (spike), .5, .5, 1.375 (spike)
    assert spikes == [1, 0, 0, 1]
    assert [float(s.i) for s in states] == pytest.approx([1, 0.5, 0.25, 1.125])
    assert [float(s.v) for s in states] == pytest.approx([0, 0.5, 0.5, 0])


def test_synaptic_decayed_input_by_hand():
    p = SynapticParams(beta=HALF, beta_syn=HALF, v_threshold=ONE)
    state = SynapticState(torch.zeros(1), torch.zeros(1))
    spikes, states = run_steps(synaptic_step, [4.0, 4.0], state, p)
    # i = 2 -> h = 1 (spike, v 0); i = 1 + 2 = 3 -> h = 1.5 (spike)
    assert spikes == [1, 1]
    assert [float(s.i) for s in states] == pytest.approx([2, 3])


def test_srm_hand_computed_trajectory():
    p = SRMParams(beta=HALF, beta_refr=HALF, v_threshold=ONE, eta=1.0, decay_input=False)
    state = SRMState(torch.zeros(1), torch.zeros(1))
    xs = [1.5, 1.5, 0.0, 2.0]
    spikes, states = run_steps(srm_step, xs, state, p)
    # psp: 1.5, 2.25, 1.125, 2.5625; u = psp - 0.5 r[t-1]: 1.5, 1.75, 0.375, 2.1875; r: 1, 1.5, .75, 1.375
    assert spikes == [1, 1, 0, 1]
    assert [float(s.psp) for s in states] == pytest.approx([1.5, 2.25, 1.125, 2.5625])
    assert [float(s.r) for s in states] == pytest.approx([1, 1.5, 0.75, 1.375])
    r_prev = [0.0] + [float(s.r) for s in states[:-1]]
    u = [float(s.psp) - 0.5 * r for s, r in zip(states, r_prev)]
    assert u == pytest.approx([1.5, 1.75, 0.375, 2.1875])


def test_srm_equals_its_kernels():
    torch.manual_seed(2)
    T = 40
    p = SRMParams(
        beta=torch.tensor(0.8, dtype=torch.float64),
        beta_refr=torch.tensor(0.6, dtype=torch.float64),
        v_threshold=torch.tensor(1.0, dtype=torch.float64),
        eta=0.7,
    )
    x = torch.rand(T, 5, dtype=torch.float64) * 2.5
    s, _ = srm_multistep(x, None, p, ATan())
    eps, eta = srm_kernels(p, T)
    assert eps[:3].tolist() == pytest.approx([0.2, 0.16, 0.128]) and eta[:3].tolist() == pytest.approx(
        [0, -0.42, -0.252]
    )
    for t in range(T):
        k = torch.arange(t + 1)
        u = (eps[k, None] * x[t - k]).sum(0) + (eta[k, None] * s[t - k]).sum(0)
        assert torch.equal(s[t], (u >= 1.0).double()), t
    assert 0 < s.mean() < 0.5


def test_srm_with_default_kernels_is_the_soft_reset_lif():
    torch.manual_seed(3)
    x = torch.rand(50, 4, 6, dtype=torch.float64) * 2.5
    srm = SRM(tau=20.0, dt=2.0).double()
    lif = LIF(tau=20.0, dt=2.0, soft_reset=True).double()
    s_srm, _ = srm(x)
    s_lif, _ = lif(x)
    assert s_lif.sum() > 0
    assert torch.equal(s_srm, s_lif)


# ---- every neuron: registry, streaming, properties ------------------------------------------


@pytest.mark.parametrize("name", sorted(NEURONS))
def test_registry_constructs_with_the_shared_kwargs(name):
    n = NEURONS[name](tau=25.0, dt=10.0, v_threshold=0.8, learn_tau=True)
    assert isinstance(n, SpikingNeuron)
    assert n.tau == pytest.approx(25.0, rel=1e-5)
    assert float(n.v_threshold) == pytest.approx(0.8)
    assert "spike_fn.alpha" in n.state_dict()
    frozen = NEURONS[name](tau=25.0, dt=10.0, v_threshold=0.8, learn_tau=False)
    assert list(frozen.parameters()) == []


@pytest.mark.parametrize("name", sorted(NEURONS))
def test_every_neuron_single_step_equals_multi_step_and_chunks(name):
    torch.manual_seed(4)
    n = NEURONS[name](tau=15.0, dt=4.0, v_threshold=1.0, learn_tau=True)
    x = torch.randn(20, 3, 5) * 1.5 + 0.5
    s_multi, st_multi = n(x)
    state, steps = None, []
    for xt in x.unbind(0):
        s, state = n.step(xt, state)
        steps.append(s)
    assert torch.equal(torch.stack(steps), s_multi)
    for a, b in zip(torch.utils._pytree.tree_leaves(state), torch.utils._pytree.tree_leaves(st_multi)):
        torch.testing.assert_close(a, b)
    s1, st1 = n(x[:7])
    s2, _ = n(x[7:], st1)
    assert torch.equal(torch.cat([s1, s2]), s_multi)
    assert s_multi.sum() > 0
    s_multi.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in n.parameters())


@pytest.mark.parametrize("name", sorted(NEURONS))
def test_time_constants_are_in_ms(name):
    a = NEURONS[name](tau=40.0, dt=10.0)
    b = NEURONS[name](tau=40.0, dt=1.0)
    assert a.tau == pytest.approx(b.tau, rel=1e-5)
    assert float(a.beta.detach()) == pytest.approx(math.exp(-10 / 40), rel=1e-6)


def test_alif_threshold_adaptation_reduces_firing():
    torch.manual_seed(5)
    x = torch.rand(200, 50) * 2
    s_lif, _ = LIF(tau=20.0, dt=1.0)(x)
    s_alif, _ = ALIF(tau=20.0, dt=1.0, tau_adapt=100.0, adapt=0.5)(x)
    assert 0 < s_alif.sum() < s_lif.sum()
    assert ALIF(tau_adapt=150.0).tau_adapt == pytest.approx(150.0, rel=1e-5)


def test_synaptic_current_delays_the_membrane_peak():
    # one input pulse, no spikes: the LIF membrane peaks at once, the current-based one later
    pulse = [1.0] + [0.0] * 19
    lif = LIF(tau=10.0, dt=1.0, v_threshold=100.0)
    syn = SynapticLIF(tau=10.0, dt=1.0, tau_syn=5.0, v_threshold=100.0)
    v_lif, v_syn, v, state = [], [], None, None
    for x in pulse:
        _, v = lif.step(torch.tensor([x]), v)
        _, state = syn.step(torch.tensor([x]), state)
        v_lif.append(float(v.detach()))
        v_syn.append(float(state.v.detach()))
    assert max(range(20), key=v_lif.__getitem__) == 0
    assert max(range(20), key=v_syn.__getitem__) > 2
    assert SynapticLIF(tau_syn=7.0, dt=1.0).tau_syn == pytest.approx(7.0, rel=1e-5)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 20), n=st.integers(1, 6), tau=st.floats(2.0, 100.0), name=st.sampled_from(sorted(NEURONS)))
def test_zero_input_never_spikes(T, n, tau, name):
    neuron = NEURONS[name](tau=tau, dt=1.0)
    s, state = neuron(torch.zeros(T, n))
    assert s.shape == (T, n) and s.sum() == 0
    assert all(torch.all(t == 0) for t in torch.utils._pytree.tree_leaves(state))


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    name=st.sampled_from(sorted(NEURONS)),
    scale=st.floats(0.0, 5.0),
    seed=st.integers(0, 2**16),
)
def test_shapes_and_t1_equals_step(shape, name, scale, seed):
    torch.manual_seed(seed)
    neuron = NEURONS[name](tau=10.0, dt=2.0)
    x = torch.randn(1, *shape) * scale
    s, state = neuron(x)
    assert s.shape == x.shape and s.dtype == x.dtype
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    s1, state1 = neuron.step(x[0])
    assert torch.equal(s[0], s1)
    for a, b in zip(torch.utils._pytree.tree_leaves(state), torch.utils._pytree.tree_leaves(state1)):
        assert a.shape == tuple(shape)
        torch.testing.assert_close(a, b)
