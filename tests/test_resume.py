"""Resuming a training run: a stop during an epoch's last batch, a real SIGKILL before the first
``save_every`` checkpoint, a corrupt ``last`` checkpoint; each resumed run ends bit for bit as an
uninterrupted one (CPU)."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import mambaspike.training.trainer as train_mod
from mambaspike.training.checkpoint import load_record
from mambaspike.training.trainer import TrainConfig, train
from test_train import TINY, quiet
from test_train import tiny_cfg as train_tiny_cfg

SRC = Path(__file__).resolve().parents[1] / "src"


def tiny_cfg(data_dir, out, **kw) -> TrainConfig:
    """test_train's tiny run, on 60 samples."""
    return train_tiny_cfg(data_dir, out, **{"subset": 60, **kw})


def log_rows(out):
    with open(out / "log.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in csv.DictReader(f)]


def same_weights(a, b, tag="last"):
    wa = load_file(a / "checkpoints" / load_record(a / "checkpoints", tag)["weights"])
    wb = load_file(b / "checkpoints" / load_record(b / "checkpoints", tag)["weights"])
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_stop_during_an_epochs_last_batch_resumes(data_dir, tmp_path, monkeypatch):
    full = tmp_path / "full"
    train(tiny_cfg(data_dir, full), log=quiet)
    steps_per_epoch = json.loads((full / "run.json").read_text())["schedule"]["steps_per_epoch"]

    # SIGTERM (as from a scheduler) arrives during the last batch of epoch 1: the step finishes, `last`
    # is saved with the epoch's batches all done, and the run stops before validating.
    cut = tmp_path / "cut"
    real_build = train_mod.build_model

    def build_signalling(cfg):
        model = real_build(cfg)
        calls = {"n": 0}
        forward = model.forward

        def forward_then_term(x):
            if model.training:
                calls["n"] += 1
                if calls["n"] == steps_per_epoch:
                    os.kill(os.getpid(), signal.SIGTERM)
            return forward(x)

        model.forward = forward_then_term
        return model

    monkeypatch.setattr(train_mod, "build_model", build_signalling)
    try:
        train(tiny_cfg(data_dir, cut), log=quiet)
        raise AssertionError("the SIGTERM did not stop the run")
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(train_mod, "build_model", real_build)
    rec = load_record(cut / "checkpoints", "last")
    assert (rec["epoch"], rec["batch_in_epoch"], rec["epochs_completed"]) == (0, steps_per_epoch, 0)
    assert not (cut / "log.csv").exists()

    # a copy whose `last` weights are truncated: resume falls back to `last.json.prev` (step 0)
    broken = tmp_path / "broken"
    shutil.copytree(cut, broken)
    w = broken / "checkpoints" / load_record(broken / "checkpoints", "last")["weights"]
    w.write_bytes(w.read_bytes()[:100])
    messages = []
    train(tiny_cfg(data_dir, broken), resume=True, log=messages.append)
    assert any(str(w) in m and "last.json.prev" in m for m in messages), messages

    train(tiny_cfg(data_dir, cut), resume=True, log=quiet)  # resumes into an epoch with no batch left
    for run in (cut, broken):
        assert same_weights(full, run) and same_weights(full, run, "best")
        assert log_rows(run) == log_rows(full)


def _train_argv(data_dir, out, *extra):
    return [
        sys.executable,
        "-m",
        "mambaspike",
        "train",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(out),
        "--subset",
        "60",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--threads",
        "1",
        "--no-progress",
        "--save-every",
        "1000",
        *[a for k, v in TINY.items() for a in ("--set", f"{k}={list(v) if isinstance(v, tuple) else v}")],
        *extra,
    ]


def _resume_argv(data_dir, out):
    """``--resume`` as a user types it: the run's own configuration, epochs and schedule."""
    argv = [sys.executable, "-m", "mambaspike", "train", "--resume", "--data-dir", str(data_dir)]
    return argv + ["--output-dir", str(out), "--threads", "1", "--no-progress"]


def _env():
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


def test_a_sigkill_before_the_first_save_every_checkpoint_resumes(data_dir, tmp_path):
    full = tmp_path / "full"
    subprocess.run(_train_argv(data_dir, full), env=_env(), check=True, capture_output=True, timeout=600)

    # killed (SIGKILL: no handler runs) as soon as run.json exists, long before step 50 (--save-every 1000)
    cut = tmp_path / "cut"
    proc = subprocess.Popen(_train_argv(data_dir, cut), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (cut / "run.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert not (cut / "metrics.json").exists()

    done = subprocess.run(_resume_argv(data_dir, cut), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert same_weights(full, cut) and same_weights(full, cut, "best")
    assert log_rows(cut) == log_rows(full)
