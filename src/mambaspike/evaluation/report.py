"""The full evaluation of a saved run (``mambaspike eval``): everything ``metrics.json`` holds, plus a
per-class report, confusion matrix, per-layer firing rates, a per-layer energy estimate, NeuroBench-style
metrics, streaming latency where the model streams, and optionally the paper's figures side by side and
firing rate over time.

Writes into the run directory (or ``out_dir``): ``eval.json``, ``eval.md``, ``confusion_matrix.png``
and, with ``analyze_temporal``, ``firing_rate_over_time.png``. ``metrics.json`` is left as the trainer
wrote it; ``eval.json`` holds the same keys (recomputed) and more.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import classification_report, confusion_matrix
from torch.utils.data import DataLoader

from mambaspike.data import collate_time_first
from mambaspike.evaluation.activity import ActivityMonitor
from mambaspike.evaluation.energy import OpCounter, footprint_bytes
from mambaspike.evaluation.inference import final_metrics, selection_info
from mambaspike.evaluation.paper import SOURCE, paper_rows
from mambaspike.evaluation.tables import fmt, markdown_table
from mambaspike.training.checkpoint import atomic_write_json
from mambaspike.training.run import load_run


@torch.no_grad()
def instrumented_inference(model: torch.nn.Module, dataset, batch_size: int = 64) -> dict:
    """One pass over ``dataset`` with spike and op counters: predictions, targets, layer activity, energy."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_time_first)
    preds, targets = [], []
    with ActivityMonitor(model) as act, OpCounter(model) as ops:
        for x, y in loader:
            preds.append(model(x).argmax(dim=1))
            targets.append(y)
    return {"pred": torch.cat(preds).numpy(), "target": torch.cat(targets).numpy(), "activity": act, "ops": ops}


@torch.no_grad()
def streaming_latency(model: torch.nn.Module, sample: torch.Tensor, repeats: int = 3) -> dict:
    """Median ms per time bin when the model streams one bin at a time, else None.

    Uses ``model.stream(x [1, 1, ...], state) -> (output, state)`` when the model has a ``stream``
    attribute; a model without one (or with another signature) gets ``None`` and a note why.
    """
    stream = getattr(model, "stream", None)
    if not callable(stream):
        return {"streaming_latency_ms_per_bin": None, "streaming_note": "model has no stream API"}
    model.eval()
    times = []
    try:
        for _ in range(repeats):
            state = None
            for x in sample.split(1, dim=0):  # (1, 1, ...)
                t0 = time.perf_counter()
                _, state = stream(x, state)
                times.append(time.perf_counter() - t0)
    except (TypeError, ValueError) as e:
        return {"streaming_latency_ms_per_bin": None, "streaming_note": f"stream API not recognised: {e}"}
    return {"streaming_latency_ms_per_bin": 1000 * statistics.median(times), "streaming_note": "model.stream, batch 1"}


def class_report(pred: np.ndarray, target: np.ndarray, class_names: list[str]) -> tuple[list[dict], np.ndarray]:
    """Per-class precision/recall/F1/support rows and the confusion matrix ``[classes, classes]``."""
    labels = list(range(len(class_names)))
    rep = classification_report(
        target, pred, labels=labels, target_names=class_names, output_dict=True, zero_division=0
    )
    rows = [
        {
            "class": c,
            "precision": rep[c]["precision"],
            "recall": rep[c]["recall"],
            "f1": rep[c]["f1-score"],
            "support": int(rep[c]["support"]),
        }
        for c in class_names
    ]
    return rows, confusion_matrix(target, pred, labels=labels)


def _ties(metrics: dict) -> str:
    """How a tie in validation accuracy was broken, for the sentences that say how a checkpoint was selected."""
    return ", ties to the lower validation loss" if metrics.get("select_rule") == "accuracy-then-loss" else ""


def paper_comparison(metrics: dict) -> dict:
    """Our measured numbers beside the paper's for the nearest data set, and how ours were selected."""
    name, same, rows = paper_rows(metrics["dataset"])
    ours = metrics["model"]
    selected = (
        f"checkpoint of epoch {metrics['selected_epoch']} of {metrics['epochs_trained']} trained, "
        f"selected by best validation accuracy ({fmt(metrics['best_val_accuracy_during_training'])}"
        f"{_ties(metrics)}); "
        f"test set {metrics['n_test']} samples" + (f" (subset {metrics['subset']})" if metrics.get("subset") else "")
    )
    out = {
        "source": SOURCE,
        "paper_dataset": name,
        "same_data": same,
        "our_dataset": metrics["dataset"],
        "selection": selected,
        "rows": [],
    }
    if name is None:
        out["note"] = f"the paper reports no figures for a data set like {metrics['dataset']!r}"
        return out
    if not same:
        out["note"] = f"the paper has no {metrics['dataset']!r}; {name} is the nearest task it reports (different data)"
    measured = {
        "accuracy_pct": 100 * metrics["test_accuracy"],
        "spikes_per_sample": metrics.get("spikes_per_sample"),
        "latency_ms": metrics.get("latency_ms_per_sample"),
    }
    for model, figs in rows.items():
        row = {"model": model}
        for k in ("accuracy_pct", "spikes_per_sample", "latency_ms"):
            row[f"paper_{k}"] = figs.get(k)
            row[f"ours_{k}"] = measured[k] if model == ours else None
        out["rows"].append(row)
    if ours not in rows:
        out["rows"].append({"model": ours, **{f"ours_{k}": v for k, v in measured.items()}})
    return out


def evaluate_checkpoint(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    data_dir: str | None = None,
    batch_size: int = 64,
    compare_paper: bool = False,
    analyze_temporal: bool = False,
    latency_repeats: int = 30,
) -> dict:
    """Evaluate the validation-selected checkpoint of ``run_dir`` on its test split and write the report."""
    from mambaspike.evaluation.plots import confusion_matrix_png, firing_rate_over_time_png

    run_dir = Path(run_dir)
    run = load_run(run_dir, data_dir=data_dir)  # first: a missing run directory is reported, not created
    record = run.checkpoint("best")
    model = run.model("best")
    out = Path(out_dir) if out_dir is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    _, val_set, test_set, info = run.datasets()

    metrics = final_metrics(model, val_set, test_set, batch_size, latency_repeats=latency_repeats)
    metrics.update(selection_info(run.record, record, run.checkpoint("last"), run.config.select))
    metrics["subset"] = run.config.subset
    metrics.update(streaming_latency(model, test_set[0][0].unsqueeze(1)))

    res = instrumented_inference(model, test_set, batch_size)
    act, ops = res["activity"], res["ops"]
    classes, cm = class_report(res["pred"], res["target"], list(info.class_names))
    energy = ops.report()
    metrics["firing_rates"] = act.layer_rates()
    metrics["energy"] = energy
    metrics["energy_pj_per_sample"] = energy["total"]["energy_pj"]
    metrics["neurobench"] = {
        "activation_sparsity": act.activation_sparsity(),
        "synaptic_operations": {
            "Effective_MACs": energy["total"]["synops_effective_macs"],
            "Effective_ACs": energy["total"]["synops_effective_acs"],
            "Dense": energy["total"]["synops_dense"],
        },
        "footprint_bytes": footprint_bytes(model),
    }
    metrics["per_class"] = classes
    metrics["confusion_matrix"] = cm.tolist()
    files = {"json": out / "eval.json", "markdown": out / "eval.md", "confusion_matrix": out / "confusion_matrix.png"}
    confusion_matrix_png(
        cm,
        list(info.class_names),
        files["confusion_matrix"],
        title=f"{metrics['model']} on {metrics['dataset']} (test)",
    )
    if analyze_temporal:
        if act.spiking:
            bins = {n: getattr(m, "dt", info.dt_us / 1000) for n, m in act.targets}
            metrics["firing_rate_over_time"] = act.rates_over_time()
            files["firing_rate_over_time"] = out / "firing_rate_over_time.png"
            title = f"{metrics['model']} on {metrics['dataset']}: firing rate per layer"
            firing_rate_over_time_png(metrics["firing_rate_over_time"], bins, files["firing_rate_over_time"], title)
        else:
            metrics["firing_rate_over_time"] = None
    if compare_paper:
        metrics["paper_comparison"] = paper_comparison(metrics)
    metrics["files"] = {k: str(v) for k, v in files.items()}
    atomic_write_json(files["json"], metrics)
    files["markdown"].write_text(markdown_report(metrics))
    return metrics


def markdown_report(m: dict) -> str:
    lines = [f"# Evaluation: {m['model']} on {m['dataset']}", ""]
    lines += [
        f"Checkpoint: epoch {m['selected_epoch']} of {m['epochs_trained']}, selected by validation accuracy"
        f"{_ties(m)}. "
        f"Test samples: {m['n_test']}.",
        "",
        markdown_table(
            [
                {
                    "accuracy": m["test_accuracy"],
                    "macro-F1": m["test_macro_f1"],
                    "spikes/sample": m["spikes_per_sample"],
                    "latency ms/sample (batch 1)": m["latency_ms_per_sample"],
                    "streaming ms/bin": m.get("streaming_latency_ms_per_bin"),
                    "energy µJ/sample": m["energy_pj_per_sample"] / 1e6,
                    "params": m["params"],
                }
            ]
        ),
        f"Latency: median of batch-1 forward passes on {m['latency_device']}, {m['latency_threads']} thread(s).",
        "",
        "## Per class",
        "",
        markdown_table(m["per_class"]),
    ]
    if m["firing_rates"]:
        lines += ["## Firing rates per spiking layer", "", markdown_table(m["firing_rates"])]
    e = m["energy"]
    lines += [
        "## Energy per layer (per sample)",
        "",
        f"*{e['note']}.*",
        "",
        markdown_table(e["layers"], ["layer", "type", "input", "macs", "acs", "effective_macs", "energy_pj"]),
        f"Total: {fmt(e['total']['macs'])} MACs, {fmt(e['total']['acs'])} ACs, "
        f"{fmt(e['total']['energy_pj'] / 1e6)} µJ per sample.",
        "",
    ]
    nb = m["neurobench"]
    lines += [
        "## NeuroBench-style metrics",
        "",
        markdown_table(
            [
                {
                    "activation sparsity": nb["activation_sparsity"],
                    **nb["synaptic_operations"],
                    "footprint (bytes)": nb["footprint_bytes"],
                }
            ]
        ),
    ]
    if "paper_comparison" in m:
        pc = m["paper_comparison"]
        lines += [
            "## Beside the paper",
            "",
            f"Paper: {pc['source']}; data set: {pc['paper_dataset']}.",
            f"Ours: {pc['our_dataset']}, {pc['selection']}.",
            "",
        ]
        if pc.get("note"):
            lines += [f"**Note:** {pc['note']}.", ""]
        if pc["rows"]:
            lines += [markdown_table(pc["rows"])]
    if m.get("firing_rate_over_time") is not None and "firing_rate_over_time" in m.get("files", {}):
        lines += ["## Firing rate over time", "", "![firing rate over time](firing_rate_over_time.png)", ""]
    lines += ["## Confusion matrix", "", "![confusion matrix](confusion_matrix.png)", ""]
    return "\n".join(lines)


def paper_comparison_text(pc: dict) -> str:
    """The side-by-side as printed on the terminal by ``mambaspike eval --compare-paper``."""
    head = [
        f"Paper: {pc['source']}",
        f"Paper data set: {pc['paper_dataset']}; ours: {pc['our_dataset']}",
        f"Our checkpoint: {pc['selection']}",
    ]
    if pc.get("note"):
        head.append(f"Note: {pc['note']}")
    return "\n".join(head) + "\n" + (markdown_table(pc["rows"]) if pc["rows"] else "")


__all__ = ["evaluate_checkpoint", "instrumented_inference", "streaming_latency", "paper_comparison", "class_report"]
