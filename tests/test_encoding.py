import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mambaspike.errors import ConfigError
from mambaspike.neurons.encoding import delta, latency, latency_times, rate


def test_rate_is_deterministic_for_a_seed_and_matches_the_probability():
    x = torch.tensor([[0.0, 0.25, 1.0]])
    a, b = rate(x, 4000, seed=3), rate(x, 4000, seed=3)
    assert torch.equal(a, b) and a.shape == (4000, 1, 3)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert a[:, 0, 0].sum() == 0 and a[:, 0, 2].sum() == 4000
    assert a[:, 0, 1].mean().item() == pytest.approx(0.25, abs=0.03)
    assert not torch.equal(rate(x, 4000, seed=4), a)


def test_latency_linear_by_hand():
    x = torch.tensor([1.0, 0.5, 0.0, 0.75])
    assert latency_times(x, 5).tolist() == [0, 2, 5, 1]  # 5 = never
    s = latency(x, 5)
    assert s.shape == (5, 4)
    assert s.sum(0).tolist() == [1, 1, 0, 1]
    assert s[:, 1].tolist() == [0, 0, 1, 0, 0]


def test_latency_log_is_rc_charging_time():
    x = torch.tensor([1.0, 0.5, 0.2])
    t = latency_times(x, 100, mode="log", tau=5.0, threshold=0.1)
    import math

    expected = [round(5 * math.log(v / (v - 0.1))) for v in (1.0, 0.5, 0.2)]
    assert t.tolist() == expected
    assert t[0] <= t[1] <= t[2]  # brighter fires earlier


def test_delta_on_off_by_hand():
    sig = torch.tensor([0.0, 0.05, 0.3, 0.3, 0.0]).view(5, 1)
    s = delta(sig, threshold=0.1)  # (T, B, 2)
    assert s.shape == (5, 1, 2)
    # t=2: up by 0.3 -> one ON (ref 0.1); t=3: still 0.2 above -> ON (ref 0.2); t=4: 0.2 below -> OFF
    assert s[:, 0, 1].tolist() == [0, 0, 1, 1, 0]
    assert s[:, 0, 0].tolist() == [0, 0, 0, 0, 1]


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 20), n=st.integers(1, 6))
def test_zero_input_gives_no_spikes_and_shapes(T, n):
    x = torch.zeros(2, n)
    assert rate(x, T, seed=0).sum() == 0 and rate(x, T, seed=0).shape == (T, 2, n)
    assert latency(x, T).sum() == 0 and latency(x, T, mode="log").shape == (T, 2, n)
    assert delta(torch.zeros(T, 2, n)).sum() == 0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: rate(torch.tensor([1.5]), 3), r"rate: input values must lie in \[0, 1\]"),
        (lambda: rate(torch.tensor([0.5]), 0), "rate: T .* must be a positive integer, got 0"),
        (lambda: latency(torch.tensor([0.5]), 3, mode="exp"), "mode must be 'linear' or 'log'"),
        (lambda: delta(torch.zeros(3, 1), threshold=0), "delta: threshold must be positive"),
    ],
)
def test_bad_arguments_name_the_problem(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
