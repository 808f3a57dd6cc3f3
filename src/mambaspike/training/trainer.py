"""The training harness, shared by every model family. :func:`train` runs its phases in order:

- :func:`setup`: the run directory (:class:`~mambaspike.training.run.Run`: created, or opened to
  resume), the data, the model, the optimizer and the fixed learning-rate schedule;
- :func:`restore`: the latest checkpoint of a resumed run, or for a new run ``run.json`` and the first
  checkpoint, written before the first step;
- :func:`train_epoch`: one epoch's steps (or what is left of it);
- :func:`validate_and_checkpoint`: validation, the log row, the diagnostics row (gradient norm per
  stage, neuron health: :mod:`mambaspike.evaluation.diagnostics`), the best and last checkpoints;
- :func:`finish`: the validation-selected checkpoint's test metrics in ``metrics.json``.

What a step does: data -> model -> AdamW (no decay on A_log, D, norms, biases, neuron parameters) -> per step: forward,
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
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mambaspike._version import __version__
from mambaspike.data import collate_time_first
from mambaspike.errors import ConfigError, TrainingError
from mambaspike.evaluation.diagnostics import GradientNorms, neuron_health
from mambaspike.evaluation.inference import classification_metrics, final_metrics, run_inference, selection_info
from mambaspike.models.registry import build_model, count_parameters, loss_and_scores
from mambaspike.training import allocator, distributed
from mambaspike.training.checkpoint import load_optimizer_state, load_record, load_weights
from mambaspike.training.config import TrainConfig, model_config
from mambaspike.training.run import Run, config_hash, resolved_config


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


def _tensorboard(log_dir):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))


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
        log = log if ctx.is_main else (lambda *a, **k: None)
        session = setup(cfg, ctx, resume, overwrite, extend_epochs, log)
        restore(session)
        with _StopFlag() as stop:
            while session.state["epoch"] < session.cfg.epochs:
                marks = train_epoch(session, stop)
                validate_and_checkpoint(session, marks)
        metrics = finish(session)
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


@dataclass
class Session:
    """Everything a training run holds while it runs (made by :func:`setup`, advanced by the phases)."""

    cfg: TrainConfig
    ctx: distributed.Context
    run: Run
    train_set: object
    val_set: object
    test_set: object
    info: object
    model_cfg: object
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    schedule: dict  # steps_per_epoch, warmup_steps, total_steps: fixed when the run is created
    log: object
    resumed: bool  # restoring from a checkpoint (not starting at step 0)
    state: dict = field(
        default_factory=lambda: {
            "epoch": 0,
            "batch_in_epoch": 0,
            "global_step": 0,
            "train_seconds": 0.0,
            "best_val_accuracy": -1.0,
            "best_val_loss": None,  # the selected epoch's (None: no epoch yet, or a record from before it)
            "best_epoch": None,
            "loss_sum": 0.0,
            "correct": 0,
            "seen": 0,
            "grad_sq": {},  # per stage, squared gradient norms summed over this epoch's steps
            "grad_steps": 0,
        }
    )
    grads: GradientNorms | None = None
    lr: float = 0.0  # the learning rate of the latest step
    writer: object = None

    @property
    def out(self):
        return self.run.path

    def record(self, epochs_completed: int) -> dict:
        """A checkpoint record: the progress, the RNG states and the configuration."""
        return {
            **self.state,
            "epochs_completed": epochs_completed,
            **_rng_states(),
            "config": {"train": asdict(self.cfg), "model": self.model_cfg.to_dict()},
        }

    def save_last(self, epochs_completed: int) -> None:
        """The ``last`` checkpoint (rank 0 writes; the one it replaces kept as ``last.json.prev``)."""
        if self.ctx.is_main:
            self.run.save_checkpoint(
                "last", self.model, self.record(epochs_completed), self.optimizer.state_dict(), keep_previous=True
            )


def setup(
    cfg: TrainConfig, ctx: distributed.Context, resume: bool, overwrite: bool, extend_epochs: bool, log
) -> Session:
    """Phase 1: the run directory, the data, the model, the optimizer and the schedule. Writes nothing
    but the removal of an overwritten run's files; a bad option is refused before that."""
    from mambaspike.data import get_datasets

    allocator.keep_freed_memory()
    _autocast(cfg.amp)  # refuse --amp without a GPU before touching the output directory
    if not resume:
        model_config(cfg)  # refuse a bad model option before loading data or writing anything

    def open_run():
        run = Run.resume(cfg, extend_epochs) if resume else Run.create(cfg, overwrite)
        return run, resume and run.started

    run, resumed = distributed.main_first(open_run, ctx)
    cfg = run.config
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    def load_data():
        return get_datasets(
            cfg.dataset,
            cfg.data_dir,
            time_window_us=cfg.time_window_us,
            dt_us=cfg.dt_us,
            subset=cfg.subset,
            seed=cfg.seed,
            augment=cfg.augment,
            augment_events=cfg.augment_events,
            download=cfg.download,
            augment_set=cfg.augment_set,
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
    saved = run.schedule if resume else None
    if saved is not None and saved["steps_per_epoch"] != steps_per_epoch:
        raise ConfigError(
            f"--resume: {run.path} was trained with {saved['steps_per_epoch']} steps per epoch, its data "
            f"now give {steps_per_epoch}; the data set at --data-dir is not the one it was trained on"
        )
    if saved is not None and not extend_epochs:
        schedule = saved
    net = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    return Session(
        cfg,
        ctx,
        run,
        train_set,
        val_set,
        test_set,
        info,
        model_cfg,
        model,
        net,
        optimizer,
        schedule,
        log,
        resumed,
        grads=GradientNorms(model),
    )


def restore(s: Session) -> None:
    """Phase 2: continue from the latest good checkpoint of a resumed run (weights, optimizer, progress,
    RNG states; ``log.csv`` cut back to its completed epochs); else write ``run.json`` and the first
    ``last`` checkpoint before the first step, so that every run that started can be resumed."""
    cfg, run = s.cfg, s.run
    record = run_record(cfg, s.model_cfg, s.info, s.schedule)
    if s.resumed:
        if s.ctx.is_main and (run.schedule != s.schedule or run.record["train"]["epochs"] != cfg.epochs):
            run.write_record(record)  # --extend-epochs: the stretched schedule
        last = run.restore_checkpoint("last", log=s.log)
        load_weights(run.checkpoint_dir, last, s.model)
        s.optimizer.load_state_dict(load_optimizer_state(run.checkpoint_dir, last))
        s.state.update({k: last.get(k, s.state[k]) for k in s.state})
        _set_rng_states(last)
        if s.ctx.is_main:
            run.trim_log(last["epochs_completed"])
        s.log(f"resuming {run.path} at epoch {s.state['epoch'] + 1}, batch {s.state['batch_in_epoch']}")
    else:
        if run.record is not None:  # --resume of a run killed between run.json and its first checkpoint
            s.log(f"{run.path} has no checkpoint yet; starting it from step 0")
        if s.ctx.is_main:
            run.clear_progress()
            run.write_record(record)
    n_params = count_parameters(s.model)
    s.log(
        f"{cfg.model} ({n_params:,} parameters) on {cfg.dataset}: {len(s.train_set)} train / {len(s.val_set)} val / "
        f"{len(s.test_set)} test samples, T={s.info.T} bins of {s.info.dt_us / 1000:g} ms, {cfg.epochs} epochs "
        f"-> {run.path}"
    )
    if s.ctx.enabled:
        s.log(f"distributed: {s.ctx.world_size} processes ({dist_backend(s.ctx)}), global batch {cfg.batch_size}")
    if not s.resumed:
        s.save_last(0)  # before the first step: a run killed at any point after this can be resumed
    s.writer = _tensorboard(run.path / "tensorboard") if s.ctx.is_main else None
    # the learning rate of the latest step: logged at the epoch's end even when a resumed epoch has no batch left
    s.lr = lr_at(max(0, s.state["global_step"] - 1), s.schedule["total_steps"], s.schedule["warmup_steps"], cfg.lr)


def train_epoch(s: Session, stop) -> dict:
    """Phase 3: the steps of the current epoch still to do (from ``state["batch_in_epoch"]`` on); a
    ``last`` checkpoint every ``save_every`` steps, and on a stop request (then ``KeyboardInterrupt``).
    Returns the epoch's timing marks for :func:`validate_and_checkpoint`."""
    cfg, ctx, state, model, optimizer = s.cfg, s.ctx, s.state, s.model, s.optimizer
    total_steps, warmup_steps = s.schedule["total_steps"], s.schedule["warmup_steps"]
    autocast = _autocast(cfg.amp)
    epoch = state["epoch"]
    t_epoch = time.perf_counter()
    model.train()
    if hasattr(s.train_set, "set_epoch"):  # augmentation drawn from (seed, epoch, sample), not the global RNG
        s.train_set.set_epoch(epoch)
    order = epoch_order(len(s.train_set), cfg.seed, epoch)[state["batch_in_epoch"] * cfg.batch_size :]
    shards = [distributed.shard(order[i : i + cfg.batch_size], ctx) for i in range(0, len(order), cfg.batch_size)]
    weights = iter([w for _, w in shards])
    # its own generator: a DataLoader iterator draws a seed when it is created, and from the global RNG that
    # would shift the augmentation's random numbers of a run resumed mid-epoch (a new iterator) against an
    # uninterrupted one
    loader = DataLoader(
        s.train_set,
        batch_sampler=[b for b, _ in shards],
        collate_fn=collate_time_first,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    bar = tqdm(
        loader,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not (cfg.progress and ctx.is_main),
        initial=state["batch_in_epoch"],
        total=s.schedule["steps_per_epoch"],
        leave=False,
        dynamic_ncols=True,
    )
    t_chunk = time.perf_counter()
    for x, y in bar:
        x, y, weight = x.to(ctx.device), y.to(ctx.device), next(weights)
        s.lr = lr = lr_at(state["global_step"], total_steps, warmup_steps, cfg.lr)
        for g in optimizer.param_groups:
            g["lr"] = lr
        with autocast:
            loss, scores = loss_and_scores(model, x, y, s.net)
        n = len(y) if weight > 0 else 0
        correct = int((scores.detach().argmax(1) == y).sum()) if n else 0
        # summed over ranks: every rank sees the same statistics and takes the same decisions
        loss_sum, correct, n, stop_votes = distributed.all_sum(
            [loss.item() * n, correct, n, float(stop.requested)], ctx
        )
        if not math.isfinite(loss_sum):
            raise TrainingError(
                f"loss became {loss_sum / max(n, 1)} at epoch {epoch + 1}, step {state['global_step']}; "
                f"stopped without writing a checkpoint (the last good one is in {s.run.checkpoint_dir}). "
                "Try a lower --lr or --grad-clip"
            )
        optimizer.zero_grad(set_to_none=True)
        (loss * weight).backward()
        state["grad_sq"] = GradientNorms.add(state["grad_sq"], s.grads.squares())  # before clipping
        state["grad_steps"] += 1
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
            s.save_last(epoch)
            if stop_votes:
                bar.close()
                s.log(f"stopped; resume with: mambaspike train --resume --output-dir {s.run.path}")
                raise KeyboardInterrupt
    bar.close()
    return {"t_epoch": t_epoch, "t_chunk": t_chunk}


def validate_and_checkpoint(s: Session, marks: dict) -> None:
    """Phase 4, at an epoch's end: rank 0 validates, logs the row, writes the ``best`` checkpoint when
    the epoch improves on it (:func:`improves`, under ``TrainConfig.select``) and the ``last`` one; the
    other ranks wait for it."""
    cfg, ctx, state = s.cfg, s.ctx, s.state
    epoch = state["epoch"]
    epoch_done = dict(epoch=epoch + 1, batch_in_epoch=0, loss_sum=0.0, correct=0, seen=0, grad_sq={}, grad_steps=0)
    if not ctx.is_main:  # rank 0 validates and writes; the others wait for it
        state.update(epoch_done)
        distributed.barrier(ctx)
        return
    val_logits, val_targets, _ = run_inference(
        s.model, s.val_set, batch_size=max(64, cfg.batch_size), device=ctx.device
    )
    val = classification_metrics(val_logits, val_targets)
    train_loss, train_acc = state["loss_sum"] / state["seen"], state["correct"] / state["seen"]
    is_best = improves(cfg.select, val, state["best_val_accuracy"], state["best_val_loss"])
    diagnostics = {
        "epoch": epoch + 1,
        "grad_rms": GradientNorms.rms(state["grad_sq"], state["grad_steps"]),
        "neurons": neuron_health(s.model, _diagnostic_batch(s).to(ctx.device)),
    }
    state.update(epoch_done)
    state["train_seconds"] += time.perf_counter() - marks["t_chunk"]
    row = {
        "epoch": epoch + 1,
        "train_loss": f"{train_loss:.5f}",
        "train_accuracy": f"{train_acc:.5f}",
        "val_loss": f"{val['loss']:.5f}",
        "val_accuracy": f"{val['accuracy']:.5f}",
        "val_macro_f1": f"{val['macro_f1']:.5f}",
        "lr": f"{s.lr:.3e}",
        "epoch_seconds": f"{time.perf_counter() - marks['t_epoch']:.2f}",
        "is_best": int(is_best),
    }
    s.run.append_log(row)
    s.run.append_diagnostics(diagnostics)
    if s.writer is not None:
        for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            s.writer.add_scalar(k, float(row[k]), epoch + 1)
    if is_best:
        state.update(best_val_accuracy=val["accuracy"], best_val_loss=val["loss"], best_epoch=epoch + 1)
        metrics = {"val_accuracy": val["accuracy"], "val_loss": val["loss"], "val_macro_f1": val["macro_f1"]}
        s.run.save_checkpoint("best", s.model, {**s.record(epoch + 1), "metrics": metrics})
    s.save_last(epoch + 1)
    s.log(
        f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
        f"val loss {val['loss']:.4f} acc {val['accuracy']:.4f}{' (best)' if is_best else ''} | "
        f"{float(row['epoch_seconds']):.1f} s"
    )
    distributed.barrier(ctx)


def improves(rule: str, val: dict, best_accuracy: float, best_loss: float | None) -> bool:
    """Whether an epoch's validation metrics ``val`` (``accuracy``, ``loss``) replace the selected
    checkpoint under ``rule`` (``TrainConfig.select``): a higher accuracy always does; at an equal one,
    ``"accuracy-then-loss"`` takes the lower loss and ``"accuracy"`` keeps the earlier epoch."""
    if val["accuracy"] != best_accuracy:
        return val["accuracy"] > best_accuracy
    return rule == "accuracy-then-loss" and (best_loss is None or val["loss"] < best_loss)


def _diagnostic_batch(s: Session, n: int = 64) -> torch.Tensor:
    """The first ``n`` validation samples, time-first: the fixed batch of the per-epoch neuron health."""
    x, _ = collate_time_first([s.val_set[i] for i in range(min(n, len(s.val_set)))])
    return x


def finish(s: Session) -> dict:
    """Phase 5: the best-by-validation checkpoint's validation and test metrics, written to
    ``metrics.json`` (rank 0; the other ranks return ``{}``)."""
    if s.writer is not None:
        s.writer.close()
    if not s.ctx.is_main:
        return {}
    ckpt_dir = s.run.checkpoint_dir
    best = load_record(ckpt_dir, "best")
    load_weights(ckpt_dir, best, s.model)
    batch = max(64, s.cfg.batch_size)
    metrics = final_metrics(s.model, s.val_set, s.test_set, batch_size=batch, device=s.ctx.device)
    metrics.update(selection_info(s.run.record, best, load_record(ckpt_dir, "last"), s.cfg.select))
    s.run.write_metrics(metrics)
    s.log(json.dumps(metrics, indent=2))
    return metrics
