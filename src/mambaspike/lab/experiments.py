"""Shared by ``compare`` and ``ablate``: train a configuration into a run directory, or reuse the run
already there, and summarise a run (metrics.json plus the energy report of ``eval``)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from mambaspike.errors import ConfigError
from mambaspike.evaluation.tables import mean_std, pm

SUMMARY_KEYS = [
    "test_accuracy",
    "test_macro_f1",
    "latency_ms_per_sample",
    "spikes_per_sample",
    "energy_uj_per_sample",
    "params",
]


def train_or_reuse(cfg, log=print) -> Path:
    """Train ``cfg`` into ``cfg.output_dir``; a finished run there (``metrics.json``) is reused, an
    interrupted one (``run.json`` only) is resumed, both only when its configuration hash equals the
    request's (:func:`requested_config`); another configuration is a ``ConfigError`` naming the
    differing fields. Returns the run directory."""
    from mambaspike.training.trainer import train

    out = Path(cfg.output_dir)
    resume = (out / "run.json").is_file()
    if resume:
        _check_same_config(cfg, json.loads((out / "run.json").read_text()), out)
    if (out / "metrics.json").is_file():
        log(f"reusing finished run {out}")
        return out
    log(f"{'resuming' if resume else 'training'} {cfg.model} seed {cfg.seed} -> {out}")
    train(replace(cfg), resume=resume, log=lambda *a, **k: None)
    return out


def requested_config(cfg) -> dict:
    """The fully resolved configuration (``training.run.resolved_config``) that training ``cfg`` would
    record: the data set's default binning where ``cfg`` leaves it open, the model configuration after
    ``cfg.model_overrides``, this code's version."""
    from mambaspike._version import __version__
    from mambaspike.data import dataset_defaults, get_entry
    from mambaspike.training.config import augmentation_applies, model_config
    from mambaspike.training.run import resolved_config

    train = asdict(cfg)
    if train["augment"] is None:  # as validate() resolves it
        train["augment"] = augmentation_applies(get_entry(cfg.dataset))
    for k, v in dataset_defaults(cfg.dataset).items():
        if train.get(k) is None:
            train[k] = v
    model = model_config(cfg, dt_ms=train["dt_us"] / 1000.0).to_dict()
    return resolved_config(train, model, __version__)


def _check_same_config(cfg, run: dict, out: Path) -> None:
    """A run directory is reused only when its configuration hash equals the request's."""
    from mambaspike.training.run import config_diff, config_hash, record_resolved

    asked, there = requested_config(cfg), record_resolved(run)
    if config_hash(asked) == config_hash(there):
        return
    diff = config_diff(there, asked)
    raise ConfigError(
        f"{out} holds a run with another configuration ({'; '.join(diff) or 'configuration hash differs'}); "
        "choose another --output-dir or remove it"
    )


def summarise_run(run_dir: Path, latency_repeats: int = 10, data_dir: str | None = None) -> dict:
    """The figures of one run for the comparison tables; reads ``eval.json`` when it is newer than the
    best checkpoint, else runs the evaluation (which writes it). ``model`` is
    :func:`~mambaspike.training.run.run_label`."""
    from mambaspike.evaluation.report import evaluate_checkpoint

    run_dir = Path(run_dir)
    ev = run_dir / "eval.json"
    best = run_dir / "checkpoints" / "best.json"
    if ev.is_file() and best.is_file() and ev.stat().st_mtime >= best.stat().st_mtime:
        m = json.loads(ev.read_text())
    else:
        m = evaluate_checkpoint(run_dir, data_dir=data_dir, latency_repeats=latency_repeats)
    run = json.loads((run_dir / "run.json").read_text())
    from mambaspike.training.run import recorded_train, run_label

    return {
        "model": run_label(run_dir, m["model"]),
        "dataset": m["dataset"],
        "seed": run["train"]["seed"],
        "select": recorded_train(run["train"])["select"],
        "run": str(run_dir),
        "test_accuracy": m["test_accuracy"],
        "test_macro_f1": m["test_macro_f1"],
        "latency_ms_per_sample": m["latency_ms_per_sample"],
        "latency_threads": m["latency_threads"],
        "spikes_per_sample": m["spikes_per_sample"],
        "energy_uj_per_sample": m["energy_pj_per_sample"] / 1e6,
        "params": m["params"],
        "epochs_trained": m["epochs_trained"],
        "train_seconds": m["train_seconds"],
    }


SELECT_PHRASES = {
    "accuracy-then-loss": "validation accuracy, ties to the lower validation loss",
    "accuracy": "validation accuracy (the first epoch at the highest)",
}


def selection_phrase(rules: list[str]) -> str:
    """How the tabulated checkpoints were selected, for a table's header: ``rules`` holds each run's
    ``TrainConfig.select``; a mix is spelled out with its run counts."""
    counts = {r: rules.count(r) for r in dict.fromkeys(rules)}
    if len(counts) == 1:
        return f"checkpoint selected by {SELECT_PHRASES[next(iter(counts))]}"
    return "checkpoints selected by " + "; ".join(
        f"{SELECT_PHRASES[r]} ({n} run{'s' * (n != 1)})" for r, n in counts.items()
    )


def aggregate(rows: list[dict], by: list[str]) -> list[dict]:
    """Group ``rows`` by the keys ``by``; for every ``SUMMARY_KEYS`` metric: mean, std and a
    ``"mean ± std"`` string (``<key>_mean``, ``<key>_std``, ``<key>``)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    out = []
    for key, rs in groups.items():
        agg = dict(zip(by, key))
        agg["seeds"] = len(rs)
        for k in SUMMARY_KEYS:
            mean, std = mean_std([r.get(k) for r in rs])
            agg[f"{k}_mean"], agg[f"{k}_std"] = mean, std
            scale = 100.0 if k in ("test_accuracy", "test_macro_f1") else 1.0
            agg[k] = f"{mean:.0f}" if k == "params" and not std else pm(mean, std, scale)
        out.append(agg)
    return out


TABLE_HEADERS = {
    "test_accuracy": "accuracy (%)",
    "test_macro_f1": "macro-F1 (%)",
    "latency_ms_per_sample": "latency (ms/sample, batch 1)",
    "spikes_per_sample": "spikes/sample",
    "energy_uj_per_sample": "energy (µJ/sample)*",
    "params": "params",
}
ENERGY_FOOTNOTE = (
    "*compute-only estimate, 4.6 pJ/MAC and 0.9 pJ/AC (45 nm FP32, Horowitz 2014); see `mambaspike.evaluation.energy`."
)


__all__ = [
    "train_or_reuse",
    "summarise_run",
    "aggregate",
    "SUMMARY_KEYS",
    "TABLE_HEADERS",
    "ENERGY_FOOTNOTE",
]
