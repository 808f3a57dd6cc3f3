"""Figures (matplotlib, Agg backend: no display needed): confusion matrix, firing rate over time,
and accuracy curves (robustness, ablation). Each function writes one PNG and returns its path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrix_png(cm: np.ndarray, class_names: list[str], path: str | Path, title: str = "") -> Path:
    """``cm [classes, classes]`` counts (rows: true class, columns: predicted) as a heat map."""
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 0.8 + 0.45 * n))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=90 if n > 12 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        hi = cm.max() if cm.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    int(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[i, j] > hi / 2 else "black",
                )
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def firing_rate_over_time_png(
    rates: dict[str, list[float]], bin_ms: dict[str, float], path: str | Path, title: str = ""
) -> Path:
    """One line per layer: firing rate (spikes per neuron per bin) against time in ms."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in rates.items():
        t = (np.arange(len(r)) + 0.5) * bin_ms.get(name, 1.0)
        ax.plot(t, r, label=name, marker=".")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("firing rate (spikes / neuron / bin)")
    ax.set_title(title or "firing rate over time per layer")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def curves_png(
    panels: dict[str, dict[str, tuple[list, list]]],
    path: str | Path,
    xlabel: dict | None = None,
    ylabel: str = "accuracy",
    title: str = "",
) -> Path:
    """One subplot per panel; in each, one curve per label: ``panels[panel][label] = (xs, ys)`` or
    ``(xs, ys, errors)``. A panel whose ``xs`` are names (categories, not levels) is drawn as bars
    with error bars instead of lines."""
    xlabel = xlabel or {}
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for i, (label, (xs, ys, *err)) in enumerate(curves.items()):
            errors = [e or 0 for e in err[0]] if err else None
            if all(isinstance(x, str) for x in xs):
                width = 0.8 / len(curves)
                pos = np.arange(len(xs)) + (i - (len(curves) - 1) / 2) * width
                ax.bar(pos, ys, width, yerr=errors, capsize=4, label=label)
                ax.set_xticks(np.arange(len(xs)), xs, fontsize=8)
                errs = errors or [0] * len(ys)
                lo = min(y - e for y, e in zip(ys, errs))
                hi = max(y + e for y, e in zip(ys, errs))
                pad = 0.25 * (hi - lo) or 0.05 * abs(hi) or 1.0
                ax.set_ylim(lo - pad, hi + pad)  # a zoomed axis: differences of a point stay visible
            else:
                ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=label)
        ax.set_title(panel)
        ax.set_xlabel(xlabel.get(panel, "level"))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def bars_png(
    labels: list[str],
    values: list[float],
    errors: list[float | None],
    path: str | Path,
    ylabel: str = "accuracy",
    title: str = "",
) -> Path:
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(labels), 3.4))
    ax.bar(labels, values, yerr=[e or 0 for e in errors], capsize=4, color="tab:blue")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


__all__ = ["confusion_matrix_png", "firing_rate_over_time_png", "curves_png", "bars_png"]


def training_analysis_png(analysis: dict, path: str | Path) -> Path:
    """Three panels over epochs: train / validation accuracy, gradient RMS per stage (log scale), and
    each spiking layer's firing rate (solid) and dead fraction (dashed)."""
    epochs = analysis["epochs"]
    ep = [e["epoch"] for e in epochs]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    ax.plot(ep, [e["train_accuracy"] for e in epochs], marker=".", label="train")
    ax.plot(ep, [e["val_accuracy"] for e in epochs], marker=".", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7)
    ax = axes[1]
    for stage in sorted({s for e in epochs for s in e["grad_rms"]}):
        ys = [e["grad_rms"].get(stage, np.nan) for e in epochs]
        ax.plot(ep, ys, marker=".", label=stage)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient norm (RMS over steps, before clipping)")
    ax.legend(fontsize=6)
    ax = axes[2]
    layers = [n["layer"] for n in epochs[-1]["neurons"]] if epochs else []
    for i, name in enumerate(layers):
        by = [{n["layer"]: n for n in e["neurons"]}.get(name) for e in epochs]
        color = f"C{i % 10}"
        ax.plot(ep, [np.nan if n is None else n["firing_rate"] for n in by], marker=".", color=color, label=name)
        ax.plot(ep, [np.nan if n is None else n["dead"] for n in by], ls="--", color=color)
    ax.set_xlabel("epoch")
    ax.set_ylabel("firing rate (solid), dead fraction (dashed)")
    if layers:
        ax.legend(fontsize=6)
    fig.suptitle(f"training analysis: {Path(analysis['run']).name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
