"""The training harness, shared by every model family. Reads top to bottom:

data -> model -> AdamW (no decay on A_log, D, norms, biases, neuron parameters) -> per step: forward,
loss (cross-entropy on the logits, or a spiking model's spike loss: ``models.registry.loss_and_scores``),
finiteness check, backward, gradient clipping, step, cosine-with-warm-up learning rate
-> every epoch: validation, CSV (and TensorBoard) log, best-by-validation checkpoint -> at the end:
the selected checkpoint's test metrics in ``OUTPUT_DIR/metrics.json``.

Distributed: under ``torchrun`` every rank runs this same function (``distributed.py``): each takes its
share of every global batch, DistributedDataParallel averages the gradients, rank 0 alone validates,
writes checkpoints and logs.

Resuming: ``checkpoints/last.json`` is written before the first step (so every run that started can
be resumed), every ``save_every`` steps, at every epoch end and when the run is stopped with Ctrl-C /
SIGTERM; the one it replaces is kept as ``last.json.prev``, the fall-back when ``last`` turns out
unreadable. It holds the epoch, the number of batches done in it, the running epoch sums and the CPU
(and CUDA) RNG states; the data order of an epoch is a pure function of ``(seed, epoch)``, so a resumed
run continues exactly where the interrupted one stopped, mid-epoch included, and ends with the same
weights as an uninterrupted run.

The schedule is fixed when a run is created: ``run.json``'s ``"schedule"`` holds the steps per epoch,
the warm-up and the total steps of the cosine. Resuming with another ``epochs`` is refused unless
``extend_epochs`` is given; then the cosine is stretched to the new total from the resumed step on.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import math
import signal
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mambaspike._version import __version__
from mambaspike.data import collate_time_first
from mambaspike.errors import ConfigError, TrainingError
from mambaspike.evaluation.inference import classification_metrics, final_metrics, run_inference, selection_info
from mambaspike.models.registry import build_model, count_parameters, loss_and_scores
from mambaspike.training import distributed
from mambaspike.training.checkpoint import (
    atomic_write_json,
    load_checkpoint,
    load_optimizer_state,
    load_record,
    load_weights,
    read_json,
    save_checkpoint,
)
from mambaspike.training.config import TrainConfig, default_output_dir, model_config
from mambaspike.training.run import config_hash, resolved_config

LOG_COLUMNS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
    "lr",
    "epoch_seconds",
    "is_best",
]


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay only weight matrices/kernels; never ``A_log``, ``D``, norms, biases or
    neuron parameters (every parameter with fewer than 2 dimensions, plus ``A_log``)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        (no_decay if p.ndim < 2 or leaf in ("A_log", "D") else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to ``base_lr``, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


class _StopFlag:
    """Ctrl-C / SIGTERM ask the loop to save and stop at the next batch boundary (twice: at once)."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _encode(state: torch.Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode()


def _decode(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)


def _rng_states() -> dict:
    """The CPU RNG state and, where CUDA is available, every GPU's (base64 of the byte tensors)."""
    states = {"rng_state": _encode(torch.get_rng_state())}
    if torch.cuda.is_available():
        states["cuda_rng_states"] = [_encode(t) for t in torch.cuda.get_rng_state_all()]
    return states


def _set_rng_states(record: dict) -> None:
    torch.set_rng_state(_decode(record["rng_state"]))
    cuda = record.get("cuda_rng_states")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_decode(s) for s in cuda])


def _tensorboard(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))


def _trim_log(path: Path, completed_epochs: int) -> None:
    """Keep the CSV rows of completed epochs only (a crash may have logged an epoch not checkpointed)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= completed_epochs]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def _append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        if new:
            w.writeheader()
        w.writerow(row)


RESUME_RECORDS = ("last.json", "last.json.prev")  # the checkpoint records --resume starts from


def prepare_run(
    cfg: TrainConfig, resume: bool, overwrite: bool = False, extend_epochs: bool = False
) -> tuple[TrainConfig, Path]:
    """Resolve the output directory; on resume, the saved configuration wins (only the progress bar,
    threads, device and data_dir may change; ``epochs`` only with ``extend_epochs``, and only upwards;
    ``cfg.epochs = None`` keeps the saved)."""
    out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg)
    run_json = out / "run.json"
    if resume:
        if not run_json.is_file():
            raise ConfigError(f"--resume: {out} holds no run to resume (no run.json); train without --resume first")
        saved = TrainConfig.from_dict(read_json(run_json)["train"])
        epochs = saved.epochs if cfg.epochs is None else cfg.epochs
        if epochs != saved.epochs and not extend_epochs:
            raise ConfigError(
                f"--epochs {epochs}: the run in {out} was created for {saved.epochs} epochs and its learning-rate "
                f"schedule is fixed; resume without --epochs, or pass --extend-epochs to stretch the schedule"
            )
        if epochs < saved.epochs:
            raise ConfigError(
                f"--extend-epochs: --epochs {epochs} is fewer than the run's {saved.epochs}; it only extends a run"
            )
        saved.epochs, saved.progress, saved.threads, saved.device = epochs, cfg.progress, cfg.threads, cfg.device
        if cfg.data_dir is not None:
            saved.data_dir = cfg.data_dir
        saved.output_dir = str(out)
        return saved, out
    if run_json.exists() and not overwrite:
        raise ConfigError(
            f"{out} already holds a run; pass --resume to continue it, --overwrite to start again, "
            "or choose another --output-dir"
        )
    if run_json.exists():
        for f in [run_json, out / "log.csv", out / "metrics.json", *(out / "checkpoints").glob("*")]:
            f.unlink(missing_ok=True)
    cfg.output_dir = str(out)
    return cfg, out


def dist_backend(ctx: distributed.Context) -> str:
    import torch.distributed as dist

    return dist.get_backend() if ctx.enabled else "none"


def _autocast(amp: bool):
    """Mixed precision: bf16 autocast on CUDA (Miao §6.1 trains in 16 bits). It acts on tensors that
    live on the GPU; on CPU ``--amp`` is refused."""
    if not amp:
        return contextlib.nullcontext()
    if not torch.cuda.is_available():
        raise ConfigError("--amp: bf16 mixed precision needs a CUDA GPU and none is available; train without --amp")
    return torch.autocast("cuda", dtype=torch.bfloat16)


def train(
    cfg: TrainConfig, resume: bool = False, overwrite: bool = False, log=print, extend_epochs: bool = False
) -> dict:
    """Train ``cfg.model`` on ``cfg.dataset``; returns the final metrics (also in metrics.json; on ranks
    other than 0 of a distributed run, an empty dict). ``resume``: continue the run in
    ``cfg.output_dir`` (``cfg.epochs = None``: its own epochs); ``extend_epochs``: allow a resumed run a
    larger ``cfg.epochs``, its cosine schedule stretched to the new total."""
    cfg.validate()  # every value, before anything runs
    ctx = distributed.init(cfg.device)
    try:
        metrics = _train(cfg, ctx, resume, overwrite, extend_epochs, log if ctx.is_main else (lambda *a, **k: None))
        # the other ranks wait here for rank 0's final evaluation: all leave together, so none tears down
        # its gloo connections (and exits) while a peer still holds the group
        distributed.barrier(ctx)
        return metrics
    finally:
        distributed.shutdown(ctx)


def run_record(cfg: TrainConfig, model_cfg, info, schedule: dict) -> dict:
    """The content of ``run.json``: the configuration, the schedule, the resolved configuration and its hash."""
    train_d, model_d = asdict(cfg), model_cfg.to_dict()
    resolved = resolved_config(train_d, model_d, __version__)
    return {
        "train": train_d,
        "model": model_d,
        "data": asdict(info),
        "schedule": schedule,
        "resolved": resolved,
        "config_hash": config_hash(resolved),
        "mambaspike_version": __version__,
        "torch_version": torch.__version__,
    }


def _train(cfg: TrainConfig, ctx: distributed.Context, resume: bool, overwrite: bool, extend_epochs: bool, log) -> dict:
    from mambaspike.data import get_datasets

    _autocast(cfg.amp)  # refuse --amp without a GPU before touching the output directory
    if not resume:
        model_config(cfg)  # refuse a bad model option before loading data or writing anything

    def prepare():
        run_cfg, run_dir = prepare_run(cfg, resume, overwrite, extend_epochs)
        return run_cfg, run_dir, resume and any((run_dir / "checkpoints" / r).exists() for r in RESUME_RECORDS)

    cfg, out, started = distributed.main_first(prepare, ctx)
    autocast = _autocast(cfg.amp)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ckpt_dir = out / "checkpoints"

    def load_data():
        return get_datasets(
            cfg.dataset,
            cfg.data_dir,
            time_window_us=cfg.time_window_us,
            dt_us=cfg.dt_us,
            subset=cfg.subset,
            seed=cfg.seed,
            augment=cfg.augment,
            download=cfg.download,
        )

    data = distributed.main_first(load_data, ctx, share=False)  # rank 0 generates / caches first
    train_set, val_set, test_set, info = data if data is not None else load_data()
    cfg.time_window_us, cfg.dt_us = info.time_window_us, info.dt_us

    torch.manual_seed(cfg.seed)
    model_cfg = model_config(
        cfg, input_shape=tuple(info.input_shape), num_classes=info.num_classes, dt_ms=info.dt_us / 1000.0
    )
    model = build_model(model_cfg).to(ctx.device)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    schedule = {
        "steps_per_epoch": steps_per_epoch,
        "warmup_steps": max(1, round(cfg.warmup_epochs * steps_per_epoch)),
        "total_steps": steps_per_epoch * cfg.epochs,
    }
    if resume:
        saved_run = read_json(out / "run.json", "run configuration (run.json)")
        saved_schedule = saved_run.get("schedule")
        if saved_schedule is not None and saved_schedule["steps_per_epoch"] != steps_per_epoch:
            raise ConfigError(
                f"--resume: {out} was trained with {saved_schedule['steps_per_epoch']} steps per epoch, its data "
                f"now give {steps_per_epoch}; the data set at --data-dir is not the one it was trained on"
            )
        if saved_schedule is not None and not extend_epochs:
            schedule = saved_schedule
        elif ctx.is_main and (saved_schedule != schedule or saved_run["train"]["epochs"] != cfg.epochs):
            atomic_write_json(out / "run.json", run_record(cfg, model_cfg, info, schedule))
    total_steps, warmup_steps = schedule["total_steps"], schedule["warmup_steps"]

    state = {
        "epoch": 0,
        "batch_in_epoch": 0,
        "global_step": 0,
        "train_seconds": 0.0,
        "best_val_accuracy": -1.0,
        "best_epoch": None,
        "loss_sum": 0.0,
        "correct": 0,
        "seen": 0,
    }
    if resume and not started:  # killed between writing run.json and the first checkpoint
        log(f"{out} has no checkpoint yet; starting it from step 0")
    if started:
        last = load_checkpoint(ckpt_dir, "last", log=log)
        load_weights(ckpt_dir, last, model)
        optimizer.load_state_dict(load_optimizer_state(ckpt_dir, last))
        state.update({k: last[k] for k in state})
        _set_rng_states(last)
        if ctx.is_main:
            _trim_log(out / "log.csv", last["epochs_completed"])
        log(f"resuming {out} at epoch {state['epoch'] + 1}, batch {state['batch_in_epoch']}")
    elif ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        for f in [
            out / "log.csv",
            out / "metrics.json",
            *ckpt_dir.glob("*.json"),
            *ckpt_dir.glob("*.json.prev"),
        ]:  # a run that never started
            f.unlink(missing_ok=True)
        atomic_write_json(out / "run.json", run_record(cfg, model_cfg, info, schedule))

    n_params = count_parameters(model)
    log(
        f"{cfg.model} ({n_params:,} parameters) on {cfg.dataset}: {len(train_set)} train / {len(val_set)} val / "
        f"{len(test_set)} test samples, T={info.T} bins of {info.dt_us / 1000:g} ms, {cfg.epochs} epochs -> {out}"
    )
    if ctx.enabled:
        log(f"distributed: {ctx.world_size} processes ({dist_backend(ctx)}), global batch {cfg.batch_size}")
    net = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    writer = _tensorboard(out / "tensorboard") if ctx.is_main else None
    save = save_checkpoint if ctx.is_main else (lambda *a, **k: None)

    def record(epochs_completed: int) -> dict:
        return {
            **state,
            "epochs_completed": epochs_completed,
            **_rng_states(),
            "config": {"train": asdict(cfg), "model": model_cfg.to_dict()},
        }

    def save_last(epochs_completed: int) -> None:
        save(ckpt_dir, "last", model, record(epochs_completed), optimizer.state_dict(), keep_previous=True)

    if not started:
        save_last(0)  # before the first step: a run killed at any point after this can be resumed
    # the learning rate of the latest step: logged at the epoch's end even when a resumed epoch has no batch left
    lr = lr_at(max(0, state["global_step"] - 1), total_steps, warmup_steps, cfg.lr)

    with _StopFlag() as stop:
        while state["epoch"] < cfg.epochs:
            epoch = state["epoch"]
            t_epoch = time.perf_counter()
            model.train()
            order = epoch_order(len(train_set), cfg.seed, epoch)[state["batch_in_epoch"] * cfg.batch_size :]
            shards = [
                distributed.shard(order[i : i + cfg.batch_size], ctx) for i in range(0, len(order), cfg.batch_size)
            ]
            weights = iter([w for _, w in shards])
            loader = DataLoader(train_set, batch_sampler=[b for b, _ in shards], collate_fn=collate_time_first)
            bar = tqdm(
                loader,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                disable=not (cfg.progress and ctx.is_main),
                initial=state["batch_in_epoch"],
                total=steps_per_epoch,
                leave=False,
                dynamic_ncols=True,
            )
            t_chunk = time.perf_counter()
            for x, y in bar:
                x, y, weight = x.to(ctx.device), y.to(ctx.device), next(weights)
                lr = lr_at(state["global_step"], total_steps, warmup_steps, cfg.lr)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                with autocast:
                    loss, scores = loss_and_scores(model, x, y, net)
                n = len(y) if weight > 0 else 0
                correct = int((scores.detach().argmax(1) == y).sum()) if n else 0
                # summed over ranks: every rank sees the same statistics and takes the same decisions
                loss_sum, correct, n, stop_votes = distributed.all_sum(
                    [loss.item() * n, correct, n, float(stop.requested)], ctx
                )
                if not math.isfinite(loss_sum):
                    raise TrainingError(
                        f"loss became {loss_sum / max(n, 1)} at epoch {epoch + 1}, step {state['global_step']}; "
                        f"stopped without writing a checkpoint (the last good one is in {ckpt_dir}). "
                        "Try a lower --lr or --grad-clip"
                    )
                optimizer.zero_grad(set_to_none=True)
                (loss * weight).backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()

                state["global_step"] += 1
                state["batch_in_epoch"] += 1
                state["loss_sum"] += loss_sum
                state["correct"] += int(correct)
                state["seen"] += int(n)
                bar.set_postfix(
                    loss=f"{state['loss_sum'] / state['seen']:.3f}",
                    acc=f"{state['correct'] / state['seen']:.3f}",
                    lr=f"{lr:.2e}",
                )
                if stop_votes or state["global_step"] % cfg.save_every == 0:
                    now = time.perf_counter()
                    state["train_seconds"] += now - t_chunk
                    t_chunk = now
                    save_last(epoch)
                    if stop_votes:
                        bar.close()
                        log(f"stopped; resume with: mambaspike train --resume --output-dir {out}")
                        raise KeyboardInterrupt
            bar.close()

            if not ctx.is_main:  # rank 0 validates and writes; the others wait for it
                state.update(epoch=epoch + 1, batch_in_epoch=0, loss_sum=0.0, correct=0, seen=0)
                distributed.barrier(ctx)
                continue
            val_logits, val_targets, _ = run_inference(
                model, val_set, batch_size=max(64, cfg.batch_size), device=ctx.device
            )
            val = classification_metrics(val_logits, val_targets)
            train_loss, train_acc = state["loss_sum"] / state["seen"], state["correct"] / state["seen"]
            is_best = val["accuracy"] > state["best_val_accuracy"]
            state.update(epoch=epoch + 1, batch_in_epoch=0, loss_sum=0.0, correct=0, seen=0)
            state["train_seconds"] += time.perf_counter() - t_chunk
            row = {
                "epoch": epoch + 1,
                "train_loss": f"{train_loss:.5f}",
                "train_accuracy": f"{train_acc:.5f}",
                "val_loss": f"{val['loss']:.5f}",
                "val_accuracy": f"{val['accuracy']:.5f}",
                "val_macro_f1": f"{val['macro_f1']:.5f}",
                "lr": f"{lr:.3e}",
                "epoch_seconds": f"{time.perf_counter() - t_epoch:.2f}",
                "is_best": int(is_best),
            }
            _append_log(out / "log.csv", row)
            if writer is not None:
                for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
                    writer.add_scalar(k, float(row[k]), epoch + 1)
            if is_best:
                state["best_val_accuracy"], state["best_epoch"] = val["accuracy"], epoch + 1
                save_checkpoint(
                    ckpt_dir,
                    "best",
                    model,
                    {
                        **record(epoch + 1),
                        "metrics": {
                            "val_accuracy": val["accuracy"],
                            "val_loss": val["loss"],
                            "val_macro_f1": val["macro_f1"],
                        },
                    },
                )
            save_last(epoch + 1)
            log(
                f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
                f"val loss {val['loss']:.4f} acc {val['accuracy']:.4f}{' (best)' if is_best else ''} | "
                f"{float(row['epoch_seconds']):.1f} s"
            )
            distributed.barrier(ctx)
    if writer is not None:
        writer.close()
    if not ctx.is_main:
        return {}

    best = load_record(ckpt_dir, "best")
    load_weights(ckpt_dir, best, model)
    metrics = final_metrics(model, val_set, test_set, batch_size=max(64, cfg.batch_size), device=ctx.device)
    metrics.update(selection_info(read_json(out / "run.json"), best, load_record(ckpt_dir, "last")))
    atomic_write_json(out / "metrics.json", metrics)
    log(json.dumps(metrics, indent=2))
    return metrics
