"""Fault injection: ``mambaspike train`` as a real subprocess, SIGKILLed at random moments (during a
step, while a checkpoint is written, during validation, at an epoch boundary), resumed with
``--resume``, killed again, ... until it finishes; then its final weights (``last`` and ``best``),
``log.csv``, ``diagnostics.jsonl`` and ``metrics.json`` (timing fields left out) are compared bit for bit with an
uninterrupted run of the same configuration (CPU).

With ``--nproc 2`` every run is a two-process gloo run under ``torchrun``, and each kill SIGKILLs one
rank, chosen at random (torchrun then stops the other); the reference is an uninterrupted two-process
run.

    PYTHONPATH=src python benchmarks/fault_injection.py --kills 10 --seed 0
    PYTHONPATH=src python benchmarks/fault_injection.py --kills 10 --seed 1 --nproc 2

Prints one line per kill and a summary (kills, runs lost, identical or not); exits 1 if a run was lost
or a resumed run differs. A run is *lost* when ``--resume`` refuses it or fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOMENTS = ("step", "checkpoint", "validation", "epoch-boundary")
TINY = ["channels=[4,8,16]", "d_model=32", "n_layers=1", "d_state=8"]


def train_argv(data_dir: Path, out: Path, args, resume: bool) -> list[str]:
    argv = [sys.executable, "-m", "mambaspike"]
    if args.nproc > 1:
        argv[1:1] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}"]
    argv += ["train", "--data-dir", str(data_dir), "--output-dir", str(out)]
    argv += ["--threads", "1", "--no-progress", "--device", "cpu"]
    if resume:
        return argv + ["--resume"]
    argv += ["--subset", str(args.subset), "--epochs", str(args.epochs), "--batch-size", "16", "--lr", "3e-3"]
    argv += ["--save-every", str(args.save_every)]
    for s in TINY:
        argv += ["--set", s]
    return argv


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def ranks(proc: subprocess.Popen) -> list[int]:
    """The PIDs of torchrun's worker processes (its children), or ``[proc.pid]`` for a plain run."""
    try:
        text = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
    except OSError:
        return [proc.pid]
    return [int(p) for p in text.split()] or [proc.pid]


def last_record(out: Path) -> dict | None:
    try:
        return json.loads((out / "checkpoints" / "last.json").read_text())
    except (OSError, ValueError):
        return None


def wait_for_moment(proc: subprocess.Popen, out: Path, moment: str, rng: random.Random, steps_per_epoch) -> str:
    """Poll the run directory until ``moment`` is reached (or the process ends); returns what was hit."""
    ckpt = out / "checkpoints"
    start = last_record(out)
    deadline = time.monotonic() + 120
    delay = rng.uniform(0.0, 2.0)
    t0 = None
    while proc.poll() is None and time.monotonic() < deadline:
        rec = last_record(out)
        if moment == "step":
            if rec is not None:
                t0 = t0 or time.monotonic()
                if time.monotonic() - t0 >= delay:
                    return f"step (about step {rec['global_step']})"
        elif moment == "checkpoint":
            if ckpt.is_dir() and any(e.name.endswith(".tmp") for e in os.scandir(ckpt)):
                return "checkpoint (a temporary file present)"
        elif rec is not None and rec != start and steps_per_epoch:
            if moment == "validation" and rec["batch_in_epoch"] == steps_per_epoch:
                return f"validation (epoch {rec['epoch'] + 1} done, not yet validated)"
            if moment == "epoch-boundary" and rec["batch_in_epoch"] == 0 and rec["epochs_completed"] > 0:
                return f"epoch boundary (after epoch {rec['epochs_completed']})"
        time.sleep(0.0005)
    return "timeout" if proc.poll() is None else "finished before the moment"


def strip_log(out: Path) -> list[dict]:
    with open(out / "log.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in csv.DictReader(f)]


def strip_metrics(out: Path) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in m.items() if not (k.startswith("latency") or k.endswith("seconds"))}


def weights(out: Path, tag: str) -> bytes:
    rec = json.loads((out / "checkpoints" / f"{tag}.json").read_text())
    return (out / "checkpoints" / rec["weights"]).read_bytes()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10, help="SIGKILLs to deliver over the run's life")
    p.add_argument("--seed", type=int, default=0, help="chooses the moments and delays")
    p.add_argument("--subset", type=int, default=120)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--save-every", type=int, default=4)
    p.add_argument("--nproc", type=int, default=1, help="processes per run (2: torchrun, gloo; one rank killed)")
    p.add_argument("--work", default=None, help="folder for the data and the two runs (default: a temporary one)")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(args.work or tempfile.mkdtemp(prefix="fault-injection-"))
    data_dir = work / "data"
    sys.path.insert(0, str(ROOT / "src"))
    from mambaspike.data.ndigits import ensure_ndigits

    ensure_ndigits(data_dir)

    ref, cut = work / "reference", work / "killed"
    subprocess.run(train_argv(data_dir, ref, args, False), env=env(), check=True, capture_output=True)
    steps_per_epoch = json.loads((ref / "run.json").read_text())["schedule"]["steps_per_epoch"]

    kills, lost, resume, results = 0, 0, False, []
    while True:
        proc = subprocess.Popen(
            train_argv(data_dir, cut, args, resume), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        killed = False
        if kills < args.kills:
            moment = MOMENTS[kills % len(MOMENTS)] if kills < len(MOMENTS) else rng.choice(MOMENTS)
            hit = wait_for_moment(proc, cut, moment, rng, steps_per_epoch)
            if proc.poll() is None:
                workers = ranks(proc)
                victim = rng.randrange(len(workers))
                try:
                    os.kill(workers[victim], signal.SIGKILL)
                    killed = True
                except ProcessLookupError:  # the rank ended in between
                    pass
            if killed:
                kills += 1
                rec = last_record(cut) or {}
                who = f" rank {victim} of {len(workers)}" if args.nproc > 1 else ""
                print(
                    f"kill {kills}:{who} aimed at {moment}, hit {hit}; "
                    f"last checkpoint at step {rec.get('global_step')}",
                    flush=True,
                )
        _, err = proc.communicate()
        if killed:  # one process: -SIGKILL; torchrun: its exit code once it has stopped the other ranks
            resume = True
            continue
        if proc.returncode != 0:
            lost += 1
            print(
                f"run {len(results) + 1} lost (exit {proc.returncode}): {err.decode().strip().splitlines()[-1:]}",
                flush=True,
            )
        else:
            results.append(compare(ref, cut))
            print(f"run {len(results)} finished after {kills} kills in all: {describe(results[-1])}", flush=True)
        if kills >= args.kills:
            break
        # finished (or lost) before all kills were delivered: a new run from scratch takes the others
        shutil.rmtree(cut)
        resume = False

    identical = sum(all(r.values()) for r in results)
    print(
        f"{kills} kills over {len(results) + lost} runs: {lost} runs lost, {identical} of {len(results)} finished "
        "runs identical to the uninterrupted one (weights last/best, log.csv and metrics.json less timings, "
        "diagnostics.jsonl)"
    )
    return 0 if not lost and identical == len(results) else 1


def compare(ref: Path, cut: Path) -> dict:
    return {
        "weights (last)": weights(ref, "last") == weights(cut, "last"),
        "weights (best)": weights(ref, "best") == weights(cut, "best"),
        "log.csv": strip_log(ref) == strip_log(cut),
        "diagnostics.jsonl": (ref / "diagnostics.jsonl").read_bytes() == (cut / "diagnostics.jsonl").read_bytes(),
        "metrics.json": strip_metrics(ref) == strip_metrics(cut),
    }


def describe(same: dict) -> str:
    return ", ".join(f"{k} {'identical' if v else 'DIFFERENT'}" for k, v in same.items())


if __name__ == "__main__":
    sys.exit(main())
