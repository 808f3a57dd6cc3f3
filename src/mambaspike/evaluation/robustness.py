"""Robustness: test accuracy against perturbation level (``mambaspike.evaluation.robustness``).

Perturbations act on the **binned frames** a data set serves (``[T, C, H, W]`` event counts per bin
and polarity), not on raw event streams, so every data set and cache works unchanged; each count is
treated as that many events at the bin's centre. Consequently time jitter is quantised to the bin
width (an event moves by ``round(N(0, sigma) / dt)`` bins) and spatial jitter to whole pixels.

============== ======================= ===================================================================
name           level                   what it does
============== ======================= ===================================================================
event_drop     probability             each event is removed independently (binomial thinning)
background     noise / signal events   adds ``round(level * events in the sample)`` events uniformly over
                                       bins, polarities and pixels
spatial_jitter sigma in pixels         each event moves by ``round(N(0, sigma))`` in x and y; events
                                       leaving the sensor are lost
time_jitter    sigma in ms             each event moves by ``round(N(0, sigma) / dt)`` bins; events
                                       leaving the window are lost
gaussian       sigma / input std       adds ``N(0, (level * std)^2)`` to every value (non-event input)
============== ======================= ===================================================================

Every perturbation at level 0 returns its input unchanged. Randomness comes from a generator seeded
by ``(seed, sample index, perturbation)``, so results do not depend on batch size or order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mambaspike.data.perturb import background_noise, event_drop, gaussian_noise, spatial_jitter, time_jitter
from mambaspike.errors import ConfigError

Perturbation = Callable[[torch.Tensor, float, torch.Generator, float], torch.Tensor]

PERTURBATIONS: dict[str, Perturbation] = {
    "event_drop": event_drop,
    "background": background_noise,
    "spatial_jitter": spatial_jitter,
    "time_jitter": time_jitter,
    "gaussian": gaussian_noise,
}
EVENT_PERTURBATIONS = ("event_drop", "background", "spatial_jitter", "time_jitter")
DEFAULT_LEVELS: dict[str, list[float]] = {
    "event_drop": [0.0, 0.1, 0.3, 0.5, 0.7, 0.9],
    "background": [0.0, 0.1, 0.25, 0.5, 1.0, 2.0],
    "spatial_jitter": [0.0, 0.5, 1.0, 2.0, 3.0],
    "time_jitter": [0.0, 5.0, 10.0, 20.0, 50.0],
    "gaussian": [0.0, 0.1, 0.25, 0.5, 1.0],
}
LEVEL_UNITS = {
    "event_drop": "drop probability",
    "background": "noise events / signal events",
    "spatial_jitter": "sigma (pixels)",
    "time_jitter": "sigma (ms)",
    "gaussian": "sigma / input std",
}


def perturb(frames: torch.Tensor, name: str, level: float, seed: int = 0, index: int = 0, dt_ms: float = 1.0):
    """Apply perturbation ``name`` at ``level`` to one sample ``frames [T, C, H, W]`` (deterministic in
    ``(seed, index, name)``)."""
    if name not in PERTURBATIONS:
        raise ConfigError(f"unknown perturbation {name!r}; available: {', '.join(PERTURBATIONS)}")
    g = torch.Generator().manual_seed((seed * 1_000_003 + index) * 31 + list(PERTURBATIONS).index(name))
    return PERTURBATIONS[name](frames, float(level), g, dt_ms)


class PerturbedDataset(Dataset):
    """``base[i]`` with ``perturb`` applied (same labels)."""

    def __init__(self, base: Dataset, name: str, level: float, seed: int = 0, dt_ms: float = 1.0):
        self.base, self.name, self.level, self.seed, self.dt_ms = base, name, level, seed, dt_ms

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = self.base[i]
        return perturb(x, self.name, self.level, self.seed, i, self.dt_ms), y


def worst_margins(rows: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{model: {perturbation: (margin, level)}}`` from :func:`robustness`'s rows: the lowest, over the
    levels, of the model's accuracy minus the best other model's at the same level, and that level."""
    acc: dict[tuple[str, float], dict[str, float]] = {}
    for r in rows:
        acc.setdefault((r["perturbation"], r["level"]), {})[r["model"]] = r["accuracy"]
    worst: dict[str, dict[str, tuple[float, float]]] = {}
    for (name, level), by_model in acc.items():
        for model, a in by_model.items():
            others = [v for m, v in by_model.items() if m != model]
            if not others:
                continue
            margin = a - max(others)
            best = worst.setdefault(model, {}).get(name)
            if best is None or margin < best[0]:
                worst[model][name] = (margin, level)
    return worst


def is_event_input(frames: torch.Tensor) -> bool:
    """Event-count frames: non-negative whole numbers."""
    return bool((frames >= 0).all() and (frames == frames.round()).all())


def _labels(run_dirs: list[Path], runs: list[dict]) -> list[str]:
    from mambaspike.training.run import run_label

    names = [run_label(d, r["model"]["name"]) for d, r in zip(run_dirs, runs)]
    if len(set(names)) == len(names):
        return names
    return [f"{n} ({d.name})" for n, d in zip(names, run_dirs)]


def robustness(
    run_dirs: list[str | Path],
    out_dir: str | Path,
    perturbations: list[str] | None = None,
    levels: dict[str, list[float]] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    data_dir: str | None = None,
    subset: int | None = None,
) -> list[dict]:
    """Test accuracy of each run's selected checkpoint under each perturbation and level.

    Writes ``robustness.csv``, ``robustness.md`` and ``robustness.png`` (one panel per perturbation,
    one curve per checkpoint) into ``out_dir``; returns the rows ``{model, run, perturbation, level,
    accuracy}``. ``subset``: evaluate on the first N test samples only.
    """
    from mambaspike.evaluation.inference import classification_metrics, run_inference
    from mambaspike.evaluation.plots import curves_png
    from mambaspike.evaluation.tables import markdown_table, write_csv
    from mambaspike.training.run import load_run

    levels = {**DEFAULT_LEVELS, **(levels or {})}
    for name in perturbations or []:
        if name not in PERTURBATIONS:
            raise ConfigError(f"--perturbations: unknown perturbation {name!r}; available: {', '.join(PERTURBATIONS)}")
    for name, ls in levels.items():
        opt = f"--{name.replace('_', '-')}-levels"
        if not ls or any(v < 0 for v in ls):
            raise ConfigError(f"{opt}: expected one or more levels >= 0 ({LEVEL_UNITS[name]}), got {ls}")
        if name == "event_drop" and any(v > 1 for v in ls):
            raise ConfigError(f"{opt}: drop probabilities must be in [0, 1], got {ls}")
    run_dirs = [Path(d) for d in run_dirs]
    runs = [load_run(d, data_dir=data_dir) for d in run_dirs]
    loaded = [(run.model("best"), run) for run in runs]
    labels = _labels(run_dirs, [run.record for run in runs])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for (model, run), label, run_dir in zip(loaded, labels, run_dirs):
        _, _, test_set, info = run.datasets()
        if subset is not None:
            test_set = torch.utils.data.Subset(test_set, range(min(subset, len(test_set))))
        events = is_event_input(test_set[0][0])
        names = perturbations or (list(EVENT_PERTURBATIONS) if events else ["gaussian"])
        for name in names:
            if name in EVENT_PERTURBATIONS and not events:
                raise ConfigError(f"{run_dir}: perturbation {name!r} needs event-count input; use 'gaussian'")
            for level in levels[name]:
                ds = PerturbedDataset(test_set, name, level, seed, info.dt_us / 1000)
                scores, targets, _ = run_inference(model, ds, batch_size)
                acc = classification_metrics(scores, targets)["accuracy"]
                rows.append(
                    {
                        "model": label,
                        "run": str(run_dir),
                        "dataset": info.name,
                        "perturbation": name,
                        "level": level,
                        "unit": LEVEL_UNITS[name],
                        "accuracy": acc,
                    }
                )
    write_csv(out / "robustness.csv", rows)
    # Markdown: one row per (perturbation, level), one accuracy column per checkpoint
    table = {}
    for r in rows:
        table.setdefault(
            (r["perturbation"], r["level"]), {"perturbation": r["perturbation"], "level": r["level"], "unit": r["unit"]}
        )[r["model"]] = r["accuracy"]
    md = [
        "# Robustness: test accuracy against perturbation level",
        "",
        f"Perturbations applied to binned frames (see `mambaspike.evaluation.robustness`); seed {seed}.",
        "",
        markdown_table(list(table.values()), ["perturbation", "level", "unit", *labels]),
        "![robustness](robustness.png)",
        "",
    ]
    if len(labels) > 1:
        worst = worst_margins(rows)
        md += [
            "## Worst margin to the best other checkpoint",
            "",
            "Per checkpoint and perturbation: the lowest, over the levels above, of its accuracy minus the best "
            "accuracy of the other checkpoints at that level (points; >= 0: never behind), and the level where "
            "it occurs.",
            "",
            markdown_table(
                [
                    {"model": m, **{p: f"{v * 100:+.1f} ({lv:g})" for p, (v, lv) in by_p.items()}}
                    for m, by_p in worst.items()
                ],
                ["model", *dict.fromkeys(r["perturbation"] for r in rows)],
            ),
        ]
    (out / "robustness.md").write_text("\n".join(md))
    panels: dict[str, dict[str, tuple[list, list]]] = {}
    for r in rows:
        xs, ys = panels.setdefault(r["perturbation"], {}).setdefault(r["model"], ([], []))
        xs.append(r["level"])
        ys.append(r["accuracy"])
    curves_png(
        panels,
        out / "robustness.png",
        xlabel={p: LEVEL_UNITS[p] for p in panels},
        ylabel="test accuracy",
        title="accuracy against perturbation level",
    )
    return rows


__all__ = [
    "PERTURBATIONS",
    "DEFAULT_LEVELS",
    "perturb",
    "PerturbedDataset",
    "robustness",
    "worst_margins",
    "is_event_input",
]
