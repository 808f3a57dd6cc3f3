"""Perturbations: identity at level 0, deterministic for a seed, the intended effect at other levels."""

import pytest
import torch

from mambaspike.errors import ConfigError
from mambaspike.evaluation.robustness import PERTURBATIONS, PerturbedDataset, is_event_input, perturb


@pytest.fixture
def frames():
    g = torch.Generator().manual_seed(0)
    return torch.poisson(torch.full((8, 2, 10, 10), 0.4), generator=g)  # event counts [T, C, H, W]


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_level_zero_is_the_identity(frames, name):
    out = perturb(frames, name, 0.0, seed=3, index=5, dt_ms=10.0)
    assert torch.equal(out, frames) and out is not frames


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_deterministic_for_a_seed_and_different_across_seeds(frames, name):
    level = 0.5 if name != "time_jitter" else 20.0
    a = perturb(frames, name, level, seed=1, index=2, dt_ms=10.0)
    b = perturb(frames, name, level, seed=1, index=2, dt_ms=10.0)
    c = perturb(frames, name, level, seed=2, index=2, dt_ms=10.0)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, frames)


def test_effects(frames):
    n = frames.sum()
    assert perturb(frames, "event_drop", 1.0).sum() == 0
    assert 0.3 * n < perturb(frames, "event_drop", 0.5).sum() < 0.7 * n
    assert perturb(frames, "background", 1.0).sum() == 2 * n  # as many noise events as signal
    # jitter moves events but only loses those that leave the sensor / window
    assert perturb(frames, "spatial_jitter", 1.0).sum() <= n
    assert 0.8 * n < perturb(frames, "time_jitter", 4.0, dt_ms=10.0).sum() <= n  # edge bins may lose a few
    # time jitter below half a bin never moves an event (quantised to bins)
    assert torch.equal(perturb(frames, "time_jitter", 1e-3, dt_ms=10.0), frames)
    assert is_event_input(frames) and not is_event_input(frames + 0.5)


def test_dataset_wrapper_and_unknown_name(frames):
    ds = PerturbedDataset([(frames, 3), (frames, 4)], "event_drop", 0.5, seed=0)
    (x0, y0), (x1, y1) = ds[0], ds[1]
    assert (y0, y1) == (3, 4) and not torch.equal(x0, x1)  # each index has its own noise
    assert torch.equal(ds[0][0], x0)
    with pytest.raises(ConfigError, match="unknown perturbation 'blur'"):
        perturb(frames, "blur", 0.1)


def test_bad_levels_are_refused_before_any_work(tmp_path):
    from mambaspike.evaluation.robustness import robustness

    with pytest.raises(ConfigError, match=r"--event-drop-levels: drop probabilities must be in \[0, 1\]"):
        robustness([], tmp_path, levels={"event_drop": [0.0, 1.5]})
    with pytest.raises(ConfigError, match="--time-jitter-levels: expected one or more levels >= 0"):
        robustness([], tmp_path, levels={"time_jitter": [-1.0]})


def test_worst_margins_take_the_lowest_margin_to_the_best_other_model():
    from mambaspike.evaluation.robustness import worst_margins

    acc = {("drop", 0.0): (0.99, 0.98, 0.97), ("drop", 0.5): (0.90, 0.95, 0.80), ("noise", 1.0): (0.7, 0.2, 0.1)}
    rows = [
        {"model": m, "perturbation": p, "level": lv, "accuracy": a}
        for (p, lv), accs in acc.items()
        for m, a in zip("abc", accs)
    ]
    w = worst_margins(rows)
    assert w["a"]["drop"] == pytest.approx((-0.05, 0.5)) and w["a"]["noise"] == pytest.approx((0.5, 1.0))
    assert w["b"]["drop"] == pytest.approx((-0.01, 0.0)) and w["c"]["noise"] == pytest.approx((-0.6, 1.0))


def test_columns_name_the_paper_variant_apart_from_the_default():
    from pathlib import Path

    from mambaspike.evaluation.robustness import _labels

    names = ["ndigits-mambaspike-paper-seed0", "ndigits-mambaspike-lif-seed0", "ndigits-mambaspike-seed0"]
    records = [{"model": {"name": "mambaspike"}}] * 3
    assert _labels([Path("study/runs") / n for n in names], records) == [
        "mambaspike-paper",
        "mambaspike-lif",
        "mambaspike",
    ]
    records = records[:2]
    same = [Path("a/ndigits-mambaspike-seed0"), Path("b/ndigits-mambaspike-seed0")]
    assert _labels(same, records) == ["mambaspike (ndigits-mambaspike-seed0)"] * 2
