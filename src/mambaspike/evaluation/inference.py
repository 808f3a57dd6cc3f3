"""Evaluation: accuracy, macro-F1, spikes per sample and batch-1 latency of a model or a saved run.

``evaluate_run(run_dir)`` recomputes a run's ``metrics.json`` from the saved files alone (run.json,
the best checkpoint, and the data set named in the run's configuration), read through
:func:`mambaspike.training.run.load_run`.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader, Dataset

from mambaspike.data import collate_time_first
from mambaspike.models.registry import count_parameters
from mambaspike.neurons.modules import SpikingNeuron
from mambaspike.training.run import load_run


class SpikeCounter:
    """Counts the spikes emitted by every ``SpikingNeuron`` module of a model while it is active (a context
    manager that installs forward hooks). ``total`` is the sum over all neurons, bins and samples."""

    def __init__(self, model: torch.nn.Module):
        self.lifs = [m for m in model.modules() if isinstance(m, SpikingNeuron)]
        self.total = 0.0
        self._handles = []

    @property
    def spiking(self) -> bool:
        return bool(self.lifs)

    def _hook(self, module, inputs, output):
        self.total += float(output[0].detach().sum())

    def __enter__(self):
        self._handles = [m.register_forward_hook(self._hook) for m in self.lifs]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []


@torch.no_grad()
def run_inference(model: torch.nn.Module, dataset: Dataset, batch_size: int = 64, device="cpu"):
    """Returns ``(logits [N, classes], targets [N], spikes_per_sample or None)``."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_time_first)
    logits, targets = [], []
    with SpikeCounter(model) as counter:
        for x, y in loader:
            logits.append(model(x.to(device)).float().cpu())
            targets.append(y)
    n = sum(len(t) for t in targets)
    spikes = counter.total / n if counter.spiking and n else None
    return torch.cat(logits), torch.cat(targets), spikes


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    pred = logits.argmax(dim=1).numpy()
    tgt = targets.numpy()
    return {
        "accuracy": float((pred == tgt).mean()),
        "macro_f1": float(f1_score(tgt, pred, average="macro", labels=np.unique(tgt), zero_division=0)),
        "loss": float(F.cross_entropy(logits, targets)),
    }


@torch.no_grad()
def measure_latency(model: torch.nn.Module, sample: torch.Tensor, repeats: int = 30, warmup: int = 5) -> dict:
    """Median wall time of one batch-1 forward pass on the device ``sample`` lives on
    (``sample``: ``[T, 1, ...]``; CUDA work is synchronised before each clock reading)."""
    model.eval()
    cuda = sample.device.type == "cuda"
    for _ in range(warmup):
        model(sample)
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(sample.device)
        t0 = time.perf_counter()
        model(sample)
        if cuda:
            torch.cuda.synchronize(sample.device)
        times.append(time.perf_counter() - t0)
    device = (
        torch.cuda.get_device_name(sample.device) if cuda else f"cpu ({platform.processor() or platform.machine()})"
    )
    return {
        "latency_ms_per_sample": 1000 * statistics.median(times),
        "latency_threads": torch.get_num_threads(),
        "latency_device": device,
        "latency_batch_size": 1,
    }


def final_metrics(model, val_set, test_set, batch_size: int = 64, latency_repeats: int = 30, device="cpu") -> dict:
    """The metrics written to ``metrics.json`` (test, validation, spikes, latency, parameters)."""
    test_logits, test_targets, spikes = run_inference(model, test_set, batch_size, device)
    val_logits, val_targets, _ = run_inference(model, val_set, batch_size, device)
    test = classification_metrics(test_logits, test_targets)
    val = classification_metrics(val_logits, val_targets)
    sample = test_set[0][0].unsqueeze(1).to(device)  # (T, 1, C, H, W)
    return {
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "test_loss": test["loss"],
        "val_accuracy": val["accuracy"],
        "val_macro_f1": val["macro_f1"],
        "n_test": len(test_targets),
        "n_val": len(val_targets),
        "spikes_per_sample": spikes,
        "params": count_parameters(model),
        **measure_latency(model, sample, repeats=latency_repeats),
    }


def evaluate_run(run_dir: Path, data_dir: str | None = None, batch_size: int = 64) -> dict:
    """Recompute the metrics of a finished (or interrupted) run from its saved files."""
    run = load_run(run_dir, data_dir=data_dir)
    best = run.checkpoint("best")
    model = run.model("best")
    _, val_set, test_set, _ = run.datasets()
    metrics = final_metrics(model, val_set, test_set, batch_size)
    metrics.update(selection_info(run.record, best, run.checkpoint("last"), run.config.select))
    return metrics


def selection_info(run: dict, best: dict, last: dict, select: str) -> dict:
    """How the evaluated checkpoint was chosen (``select``: the run's ``TrainConfig.select``), and how
    long the run trained (from the records)."""
    return {
        "model": run["model"]["name"],
        "dataset": run["train"]["dataset"],
        "selected_by": "val",
        "select_rule": select,
        "selected_epoch": best["epoch"],
        "best_val_accuracy_during_training": best["metrics"]["val_accuracy"],
        "epochs_trained": last["epochs_completed"],
        "train_seconds": last["train_seconds"],
    }
