"""Training diagnostics of a network, spiking or not: neuron health per spiking layer and gradient norm
per stage, recorded once per epoch by the trainer (``OUTPUT_DIR/diagnostics.jsonl``) and read back by
``mambaspike eval --analyze-training``.

- :func:`neuron_health`: on a fixed batch in eval mode, per spiking layer (every ``SpikingNeuron``):
  the firing rate (spikes per neuron per bin), the fraction of **dead** neurons (no spike in any bin
  of any sample of the batch) and of **saturated** ones (a spike in more than ``saturated`` of the
  bins, averaged over the batch).
- :class:`GradientNorms`: per stage of the model (``frontend.blocks.0``, ``interface``,
  ``backbone.layers.1``, ``head``, ...: a parameter's name up to its first list index, else its first
  part), the L2 norm of the gradient before clipping, summed in square over the steps of an epoch;
  :meth:`GradientNorms.rms` is the root mean square over the steps.
- :func:`read_diagnostics` / :func:`training_analysis`: the per-epoch records of a run directory, as a
  table beside ``log.csv`` (train/validation accuracy and their gap).
- :func:`representation_sensitivity`: how far a perturbation of the input (event drop, jitter, noise:
  :mod:`mambaspike.evaluation.robustness`) moves what each stage hands on -- the front-end's (or
  stem's) output, the interface's sequence into the backbone -- and how it changes each spiking
  layer's firing rate: where a model's robustness is lost.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import torch
from torch import nn

from mambaspike.neurons.modules import SpikingNeuron
from mambaspike.training.run import DIAGNOSTICS as DIAGNOSTICS_FILE


def stage_of(param_name: str) -> str:
    """The stage a parameter belongs to: its name up to the first list index within the first three
    parts (``frontend.blocks.0.conv.weight`` -> ``frontend.blocks.0``), else its first part."""
    parts = param_name.split(".")
    for i, p in enumerate(parts[:3]):
        if p.isdigit():
            return ".".join(parts[: i + 1])
    return parts[0]


class GradientNorms:
    """Per-stage gradient norms, accumulated step by step (``add``) as plain floats (checkpointable)."""

    def __init__(self, model: nn.Module):
        self.stages: dict[str, list[torch.nn.Parameter]] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                self.stages.setdefault(stage_of(name), []).append(p)

    def squares(self) -> dict[str, float]:
        """This step's squared gradient norm per stage (parameters without a gradient count 0)."""
        sums = []  # one float64 scalar per stage, read back together (one sync per step, no gradient copies)
        for params in self.stages.values():
            norms = [
                torch.linalg.vector_norm(p.grad.detach(), dtype=torch.float64) for p in params if p.grad is not None
            ]
            sums.append(torch.stack(norms).square().sum() if norms else torch.zeros((), dtype=torch.float64))
        return dict(zip(self.stages, torch.stack(sums).tolist())) if sums else {}

    @staticmethod
    def add(sums: dict[str, float], squares: dict[str, float]) -> dict[str, float]:
        return {k: sums.get(k, 0.0) + v for k, v in squares.items()}

    @staticmethod
    def rms(sums: dict[str, float], steps: int) -> dict[str, float]:
        """Root mean square of the per-step norms, per stage."""
        return {k: math.sqrt(v / steps) if steps else 0.0 for k, v in sums.items()}


@torch.no_grad()
def neuron_health(model: nn.Module, x: torch.Tensor, saturated: float = 0.9) -> list[dict]:
    """One row per spiking layer for the time-first batch ``x``, the model in eval mode: ``layer``,
    ``neurons`` (per sample), ``firing_rate``, ``dead`` and ``saturated`` fractions. Empty for a model
    with no spiking neuron. The model's train/eval mode is restored."""
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, SpikingNeuron)]
    if not targets:
        return []
    seen: dict[str, list[torch.Tensor]] = {n: [] for n, _ in targets}

    def hook_for(name):
        def hook(module, args, output):
            seen[name].append(output[0].detach())  # (T, B, ...) (T = 1 where a layer runs bin by bin)

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in targets]
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    rows = []
    for name, chunks in seen.items():
        if not chunks:
            continue
        s = torch.cat(chunks, 0).float()  # (T, B, ...)
        if s.dim() < 3:  # a neuron called on one step [B, N]
            s = s[None]
        per_neuron = s.flatten(2).mean(0)  # (B, N): fraction of bins with a spike
        rows.append(
            {
                "layer": name,
                "neurons": int(per_neuron.shape[1]),
                "firing_rate": float(s.mean()),
                "dead": float((per_neuron.sum(0) == 0).float().mean()),
                "saturated": float((per_neuron.mean(0) > saturated).float().mean()),
            }
        )
    return rows


def read_diagnostics(run_dir: str | Path) -> list[dict]:
    """The per-epoch records of ``run_dir/diagnostics.jsonl`` (one dict per completed epoch)."""
    path = Path(run_dir) / DIAGNOSTICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a half-written last line
            continue
    return rows


def training_analysis(run_dir: str | Path) -> dict:
    """Per epoch: train / validation accuracy and their gap (``log.csv``), gradient RMS per stage and
    the spiking layers' firing rate, dead and saturated fractions (``diagnostics.jsonl``). Raises
    ``FileNotFoundError`` naming the file when the run has neither."""
    run_dir = Path(run_dir)
    log_path = run_dir / "log.csv"
    if not log_path.is_file():
        raise FileNotFoundError(f"{log_path}: no training log (expected the --output-dir of 'mambaspike train')")
    with open(log_path, newline="") as f:
        log = {int(r["epoch"]): r for r in csv.DictReader(f)}
    diag = {int(d["epoch"]): d for d in read_diagnostics(run_dir)}
    epochs = []
    for e in sorted(log):
        r, d = log[e], diag.get(e, {})
        train_acc, val_acc = float(r["train_accuracy"]), float(r["val_accuracy"])
        epochs.append(
            {
                "epoch": e,
                "train_accuracy": train_acc,
                "val_accuracy": val_acc,
                "gap": train_acc - val_acc,
                "grad_rms": d.get("grad_rms", {}),
                "neurons": d.get("neurons", []),
            }
        )
    return {"run": str(run_dir), "epochs": epochs, "has_diagnostics": bool(diag)}


def analysis_markdown(analysis: dict) -> str:
    """The analysis as Markdown: one table of accuracies and gradient norms, one of neuron health."""
    epochs = analysis["epochs"]
    stages = sorted({s for e in epochs for s in e["grad_rms"]})
    layers = [n["layer"] for n in epochs[-1]["neurons"]] if epochs else []
    lines = [f"# Training analysis: {analysis['run']}", ""]
    head = ["epoch", "train acc", "val acc", "gap"] + [f"grad {s}" for s in stages]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in epochs:
        cells = [str(e["epoch"]), f"{e['train_accuracy']:.4f}", f"{e['val_accuracy']:.4f}", f"{e['gap']:+.4f}"]
        cells += [f"{e['grad_rms'].get(s, float('nan')):.3g}" for s in stages]
        lines.append("| " + " | ".join(cells) + " |")
    if layers:
        lines += ["", "Spiking layers (eval mode, a fixed validation batch): firing rate / dead / saturated", ""]
        head = ["epoch"] + layers
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for e in epochs:
            by = {n["layer"]: n for n in e["neurons"]}
            cells = [str(e["epoch"])]
            for name in layers:
                n = by.get(name)
                cells.append("—" if n is None else f"{n['firing_rate']:.3f} / {n['dead']:.0%} / {n['saturated']:.0%}")
            lines.append("| " + " | ".join(cells) + " |")
    if not analysis["has_diagnostics"]:
        lines += ["", f"(no {DIAGNOSTICS_FILE}: a run from before diagnostics were recorded)"]
    return "\n".join(lines) + "\n"


@torch.no_grad()
def _stage_outputs(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """``({"front": interface input, "interface": interface output}, {spiking layer: firing rate})``
    of one eval-mode forward pass of ``x``."""
    stages: dict[str, torch.Tensor] = {}
    rates: dict[str, list[float]] = {}
    handles = []
    interface = getattr(model, "interface", None)
    if interface is not None:

        def grab(module, args, output):
            stages["front"] = args[0].detach().flatten(2).transpose(0, 1).flatten(1)  # (B, T' * F)
            stages["interface"] = output.detach().flatten(1)  # (B, L * D)

        handles.append(interface.register_forward_hook(grab))
    for name, m in model.named_modules():
        if isinstance(m, SpikingNeuron):

            def rate(module, args, output, name=name):
                rates.setdefault(name, []).append(float(output[0].float().mean()))

            handles.append(m.register_forward_hook(rate))
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return stages, {k: sum(v) / len(v) for k, v in rates.items()}


@torch.no_grad()
def representation_sensitivity(
    model: nn.Module,
    samples: list[torch.Tensor],
    perturbation: str,
    levels: list[float],
    dt_ms: float,
    seed: int = 0,
) -> list[dict]:
    """For each ``level`` of ``perturbation`` applied to ``samples`` (event frames ``[T, C, H, W]``), per
    stage (``front``: the front-end's or stem's output, ``interface``: the sequence into the backbone):
    ``rel_change`` = mean over samples of ``|f(x') - f(x)| / |f(x)|`` and ``cosine`` = mean cosine
    similarity of ``f(x')`` and ``f(x)``; per spiking layer: ``rate_ratio``, its firing rate on the
    perturbed input over that on the clean input. The model is put in eval mode."""
    from mambaspike.data import collate_time_first
    from mambaspike.evaluation.robustness import perturb

    model.eval()
    x = collate_time_first([(s, 0) for s in samples])[0]
    clean, clean_rates = _stage_outputs(model, x)
    rows = []
    for level in levels:
        noisy = [perturb(s, perturbation, level, seed=seed, index=i, dt_ms=dt_ms) for i, s in enumerate(samples)]
        xp = collate_time_first([(s, 0) for s in noisy])[0]
        got, rates = _stage_outputs(model, xp)
        for stage, a in clean.items():
            b = got[stage]
            rel = ((b - a).norm(dim=1) / a.norm(dim=1).clamp(min=1e-12)).mean()
            cos = torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-12).mean()
            rows.append(
                {
                    "perturbation": perturbation,
                    "level": level,
                    "stage": stage,
                    "rel_change": float(rel),
                    "cosine": float(cos),
                }
            )
        for layer, r0 in clean_rates.items():
            rows.append(
                {
                    "perturbation": perturbation,
                    "level": level,
                    "stage": layer,
                    "rate_ratio": rates[layer] / r0 if r0 > 0 else float("nan"),
                }
            )
    return rows


__all__ = [
    "DIAGNOSTICS_FILE",
    "GradientNorms",
    "analysis_markdown",
    "neuron_health",
    "read_diagnostics",
    "representation_sensitivity",
    "stage_of",
    "training_analysis",
]
