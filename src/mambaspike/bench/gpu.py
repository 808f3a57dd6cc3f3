"""``mambaspike bench gpu``: the device check. Every CUDA path against its CPU reference, then timings.

Checks, in order (each one row; ``max_rel_err`` is the largest difference of any output, state or
gradient to the reference, relative to the reference's largest magnitude; ``tol`` the bound it
must stay within):

- ``scan/cuda``, ``scan/triton``, ``scan/parallel``: each selective-scan backend on the GPU (float32,
  without and with ``initial_state``; mamba-ssm only without) against the reference loop on the CPU;
  ``scan/auto``: what ``auto`` picks on the GPU for a call with an initial state (never the loop);
- ``lif/triton``, ``lif/auto``, ``lif/recurrent``: the Triton LIF kernel, the ``auto`` LIF and the
  recurrent LIF on the GPU (float64: spikes must be equal) against the reference loops on the CPU;
- ``fused/mamba``, ``fused/front-end``: the inference forwards whose fused kernels are CPU-only (the
  Mamba backbone, the Mamba-Spike model) on the GPU against the CPU's fused kernels;
- ``model/NAME/fp32``, ``model/NAME/bf16``: forward and backward (loss, scores, every parameter
  gradient) of each model family at the N-MNIST recipe's configuration against the CPU in float32:
  in float32 every tensor within ``tol``; under bfloat16 autocast everything finite, the loss within
  ``tol``, scores and gradients pointing the same way (``grad_cosine``; :data:`BF16_BOUNDS`);
- ``ddp/nccl``: one DistributedDataParallel step (2 ranks where there are 2 GPUs, else 1) against
  the single-process gradient of the whole batch.

Then ``time/INPUT/NAME``: training samples/s (forward + backward + AdamW at the recipe's batch size)
and batch-1 latency of each model at the N-MNIST and DVS Gesture recipes' shapes.

The first failed check stops the run with a non-zero exit naming the step and its error. ``--out DIR``
gets ``gpu_check.json`` and ``gpu_check.md`` (also on failure, up to the failed step). Without a CUDA
device (or with ``--dry-run``) every step is still named: those that can run on the CPU run there at
tiny shapes (the same comparisons, both sides on the CPU), the others are marked
``skipped: no CUDA device``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from mambaspike.errors import MambaspikeError

DESCRIPTION = "device check: every CUDA path against its CPU reference, then model timings (JSON + Markdown)"

MODELS = ("mambaspike", "mamba", "lstm", "gru")
# recipe -> (input_shape, num_classes): the data sets' shapes of one time step
RECIPE_INPUTS = {"nmnist": ((2, 34, 34), 10), "dvsgesture": ((2, 128, 128), 11)}
NO_CUDA = "skipped: no CUDA device"


class CheckFailed(MambaspikeError):
    """A device check disagreed with its reference (or raised)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="write gpu_check.json and gpu_check.md here")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="name every step; run on the CPU at tiny shapes what can run there (automatic without CUDA)",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    p.add_argument("--no-timing", action="store_true", help="only the checks")


@dataclass
class Ctx:
    device: torch.device  # where the paths under test run
    dry: bool  # tiny shapes, CPU only
    repeats: int


@dataclass
class Step:
    name: str
    fn: Callable[[Ctx], dict]
    needs_cuda: bool = True  # else it also runs (at tiny shapes, on the CPU) in a dry run
    kind: str = "check"


# ------------------------------------------------------------------------------------------ helpers


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    if a.shape != b.shape:
        raise CheckFailed(f"shape {tuple(a.shape)} against the reference's {tuple(b.shape)}")
    if not torch.isfinite(a).all():
        return float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)) if b.numel() else 0.0


def _compare(fast: dict, ref: dict, tol: float) -> dict:
    """``{max_rel_err, worst, tol}``; raises :class:`CheckFailed` naming the worst tensor over ``tol``."""
    errs = {k: _rel(fast[k], ref[k]) for k in ref}
    worst = max(errs, key=errs.get) if errs else "-"
    err = errs.get(worst, 0.0)
    if not err <= tol:
        raise CheckFailed(f"{worst}: relative error {err:.3g} > {tol:g}")
    return {"max_rel_err": err, "worst": worst, "tol": tol}


# bfloat16 autocast against float32: (loss relative error <=, scores' cosine >=, gradients' cosine >=).
# A spiking front-end's threshold turns bfloat16 rounding into flipped spikes, which moves its
# outputs and surrogate gradients far more than rounding moves a smooth model's.
BF16_BOUNDS = {"spiking": (0.2, 0.9, 0.5), "smooth": (0.02, 0.999, 0.99)}


def _cosine(fast: dict, ref: dict, names: list[str]) -> float:
    a = torch.cat([fast[k].detach().cpu().double().flatten() for k in names])
    b = torch.cat([ref[k].detach().cpu().double().flatten() for k in names])
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def _compare_bf16(fast: dict, ref: dict, spiking: bool) -> dict:
    """bfloat16 autocast against float32 within :data:`BF16_BOUNDS`: every output and gradient
    finite, the loss close, the scores and all gradients together (one vector) pointing the same way.
    ``max_rel_err`` (reported, not bounded) is the largest per-tensor error."""
    loss_tol, min_scores, min_grads = BF16_BOUNDS["spiking" if spiking else "smooth"]
    names = [k for k in ref if k.startswith("grad ")]
    missing = [k for k in names if k not in fast]
    if missing:
        raise CheckFailed(f"no gradient under autocast for {', '.join(missing)}")
    bad = [k for k in ref if not torch.isfinite(fast[k]).all()]
    if bad:
        raise CheckFailed(f"non-finite under autocast: {', '.join(bad)}")
    loss_err = _rel(fast["loss"], ref["loss"])
    if not loss_err <= loss_tol:
        raise CheckFailed(f"loss: relative error {loss_err:.3g} > {loss_tol:g}")
    cos_s, cos_g = _cosine(fast, ref, ["scores"]), _cosine(fast, ref, names)
    if not cos_s >= min_scores:
        raise CheckFailed(f"scores: cosine similarity {cos_s:.4g} to float32 < {min_scores:g}")
    if not cos_g >= min_grads:
        raise CheckFailed(f"gradients: cosine similarity {cos_g:.4g} to float32 < {min_grads:g}")
    errs = {k: _rel(fast[k], ref[k]) for k in ref}
    worst = max(errs, key=errs.get)
    return {"max_rel_err": errs[worst], "worst": worst, "tol": loss_tol, "grad_cosine": cos_g}


@contextlib.contextmanager
def _no_tf32():
    """Full float32 matmuls and convolutions on the GPU while checking (TF32 would round to 10 bits)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


# --------------------------------------------------------------------------------------------- scan


def _scan_inputs(ctx: Ctx, with_state: bool) -> dict:
    Bs, Dm, N, L = (1, 4, 3, 17) if ctx.dry else (2, 64, 16, 1024)
    g = torch.Generator().manual_seed(0)
    t = dict(
        u=torch.randn(Bs, Dm, L, generator=g),
        delta=0.5 * torch.randn(Bs, Dm, L, generator=g) - 1,
        A=-torch.rand(Dm, N, generator=g) * 2 - 0.05,
        B=torch.randn(Bs, N, L, generator=g),
        C=torch.randn(Bs, N, L, generator=g),
        D=torch.randn(Dm, generator=g),
        z=torch.randn(Bs, Dm, L, generator=g),
        delta_bias=torch.randn(Dm, generator=g),
    )
    if with_state:
        t["initial_state"] = torch.randn(Bs, Dm, N, generator=g)
    return t


def _scan_run(backend: str, t: dict, device) -> dict:
    from mambaspike.ssm.scan import selective_scan

    ins = {k: v.to(device).requires_grad_() for k, v in t.items()}
    y, last = selective_scan(**ins, delta_softplus=True, return_last_state=True, backend=backend)
    gy = torch.cos(torch.arange(y.numel(), dtype=torch.float32)).view_as(y).to(device)
    grads = torch.autograd.grad((y * gy).sum() + last.square().sum(), list(ins.values()))
    return {"y": y, "last state": last, **{f"grad {k}": gk for k, gk in zip(ins, grads)}}


def _scan_check(backend: str, states=(False, True)) -> Callable[[Ctx], dict]:
    def check(ctx: Ctx) -> dict:
        out = {"max_rel_err": 0.0}
        for with_state in states:
            t = _scan_inputs(ctx, with_state)
            ref = _scan_run("reference", t, "cpu")
            r = _compare(_scan_run(backend, t, ctx.device), ref, 1e-4)
            if r["max_rel_err"] >= out["max_rel_err"]:
                out = {**r, "worst": r["worst"] + (" (initial_state)" if with_state else "")}
        return out

    return check


def _scan_auto(ctx: Ctx) -> dict:
    from mambaspike.ssm.scan import resolve_backend

    picked = resolve_backend("auto", ctx.device, initial_state=True)
    if ctx.device.type == "cuda" and picked == "reference":
        raise CheckFailed("auto picked the reference loop on CUDA")
    return {**_scan_check("auto", (True,))(ctx), "picked": picked}


def _mamba_ssm() -> bool:
    from mambaspike.ssm.scan import _mamba_ssm_fn

    return _mamba_ssm_fn() is not None


def _triton() -> bool:
    return importlib.util.find_spec("triton") is not None


# ---------------------------------------------------------------------------------------------- LIF


def _lif_run(backend: str, device, dtype, recurrent: bool, dry: bool) -> dict:
    from mambaspike.neurons.modules import LIF

    T, n = (6, 8) if dry else (64, 4096)
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(T, 2, n, generator=g, dtype=dtype) * 1.2 + 0.4).to(device).requires_grad_()
    gs = torch.randn(T, 2, n, generator=g, dtype=dtype).to(device)
    torch.manual_seed(0)
    lif = LIF(tau=10.0, backend=backend).to(device=device, dtype=dtype)
    if recurrent:
        W = (torch.randn(n, n, generator=g, dtype=dtype) * 0.3 / n**0.5).to(device).requires_grad_()
        s, v = lif(x, recurrent=W)
    else:
        W = None
        s, v = lif(x)
    v_last = v[0] if isinstance(v, tuple) else v
    ins = [x] + ([W] if W is not None else []) + [p for p in lif.parameters() if p.requires_grad]
    grads = torch.autograd.grad((s * gs).sum() + v_last.sum(), ins, allow_unused=True)
    out = {"spikes": s, "last potential": v_last}
    for i, gk in enumerate(grads):
        if gk is not None:
            out[f"grad {i}"] = gk
    return out


def _lif_check(backend: str, recurrent: bool = False) -> Callable[[Ctx], dict]:
    def check(ctx: Ctx) -> dict:
        dt = torch.float64
        ref = _lif_run("reference", "cpu", dt, recurrent, ctx.dry)
        fast = _lif_run(backend, ctx.device, dt, recurrent, ctx.dry)
        if not torch.equal(fast["spikes"].cpu(), ref["spikes"]):
            n = int((fast["spikes"].cpu() != ref["spikes"]).sum())
            raise CheckFailed(f"spikes: {n} of {ref['spikes'].numel()} differ from the reference (float64)")
        return _compare(fast, ref, 1e-9)

    return check


# ------------------------------------------------------------------------------------------- models


def _recipe_config(model: str, recipe: str, dry: bool):
    """``(ModelConfig, T, batch)`` of ``configs/RECIPE-MODEL.yaml`` (in a dry run: 4 steps of 16 x 16
    frames, batch 2, ``d_model`` 32, two narrow conv layers)."""
    from mambaspike.models.config import ModelConfig
    from mambaspike.training.recipes import load_recipe

    r = load_recipe(f"{recipe}-{model}")
    shape, classes = RECIPE_INPUTS[recipe]
    T = int(r["time_window_us"] // r["dt_us"])
    overrides = dict(r["model_overrides"])
    if dry:  # tiny: 16 x 16 frames, narrow layers
        shape = (shape[0], 16, 16)
        overrides.update(d_model=32, channels=(4, 8))
    cfg = ModelConfig(name=model, input_shape=shape, num_classes=classes, dt_ms=r["dt_us"] / 1000, **overrides)
    return cfg, (4 if dry else T), (2 if dry else int(r["batch_size"]))


def _inputs(cfg, T: int, batch: int, seed: int = 0):
    from mambaspike.bench.inputs import bench_input

    y = torch.randint(0, cfg.num_classes, (batch,), generator=torch.Generator().manual_seed(seed))
    return bench_input(cfg, T, batch, seed), y


def _model_grads(cfg, x, y, device, autocast: bool) -> dict:
    from mambaspike.models.registry import build_model, loss_and_scores

    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        loss, scores = loss_and_scores(model, x.to(device), y.to(device))
    loss.backward()
    out = {"loss": loss.float().reshape(1), "scores": scores.float()}
    out.update({f"grad {n}": p.grad for n, p in model.named_parameters() if p.grad is not None})
    return out


def _model_check(model: str, autocast: bool) -> Callable[[Ctx], dict]:
    def check(ctx: Ctx) -> dict:
        cfg, T, _ = _recipe_config(model, "nmnist", ctx.dry)
        x, y = _inputs(cfg, min(T, 8) if not ctx.dry else T, 2)
        ref = _model_grads(cfg, x, y, torch.device("cpu"), False)
        fast = _model_grads(cfg, x, y, ctx.device, autocast)
        if not autocast:
            return _compare(fast, ref, 1e-3)
        return _compare_bf16(fast, ref, spiking=model == "mambaspike")

    return check


def _fused_mamba(ctx: Ctx) -> dict:
    from mambaspike.ssm.mamba import MambaBackbone, MambaConfig

    torch.manual_seed(0)
    net = MambaBackbone(MambaConfig(d_model=16 if ctx.dry else 128, n_layers=2, d_state=16)).eval()
    x = torch.randn(2, 9 if ctx.dry else 256, net.cfg.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, ref_states = net(x)  # the CPU's fused kernels
        fast, states = net.to(ctx.device)(x.to(ctx.device))
    pairs = {"y": (fast, ref)}
    for i, (s, r) in enumerate(zip(states, ref_states)):
        pairs[f"layer {i} conv state"], pairs[f"layer {i} ssm state"] = (s[0], r[0]), (s[1], r[1])
    return _compare({k: a for k, (a, _) in pairs.items()}, {k: b for k, (_, b) in pairs.items()}, 1e-4)


def _fused_frontend(ctx: Ctx) -> dict:
    from mambaspike.models.registry import build_model

    cfg, T, _ = _recipe_config("mambaspike", "nmnist", ctx.dry)
    x, _ = _inputs(cfg, T, 2)
    x = x * 20  # enough input for the untrained front-end to fire
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        ref = model(x)
        fast = model.to(ctx.device)(x.to(ctx.device))
    return _compare({"logits": fast}, {"logits": ref}, 1e-3)


# ---------------------------------------------------------------------------------------------- DDP


def _ddp_net(seed: int = 0):
    from torch import nn

    from mambaspike.ssm.mamba import MambaBackbone, MambaConfig

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 16), _Backbone(MambaBackbone(MambaConfig(d_model=16, n_layers=1))))


class _Backbone(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]


def _ddp_batch():
    g = torch.Generator().manual_seed(3)
    return torch.randn(4, 12, 3, generator=g), torch.randn(4, 12, 16, generator=g)


def _ddp_worker(rank: int, world: int, init: str, backend: str, out: str) -> None:
    import torch.distributed as dist

    device = torch.device(f"cuda:{rank}") if backend == "nccl" else torch.device("cpu")
    dist.init_process_group(backend, init_method=init, rank=rank, world_size=world)
    try:
        net = _ddp_net().to(device)
        ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=[rank] if backend == "nccl" else None)
        x, target = _ddp_batch()
        share = x.shape[0] // world
        xs, ts = (t[rank * share : (rank + 1) * share].to(device) for t in (x, target))
        torch.nn.functional.mse_loss(ddp(xs), ts).backward()  # DDP averages the equal shares' gradients
        if rank == 0:
            torch.save({n: p.grad.cpu() for n, p in net.named_parameters()}, out)
    finally:
        dist.destroy_process_group()


def _ddp(ctx: Ctx) -> dict:
    cuda = ctx.device.type == "cuda"
    world = 2 if cuda and torch.cuda.device_count() >= 2 else 1
    backend = "nccl" if cuda else "gloo"
    with tempfile.TemporaryDirectory() as tmp:
        init, out = f"file://{tmp}/rendezvous", os.path.join(tmp, "grads.pt")
        if world == 1:
            _ddp_worker(0, 1, init, backend, out)
        else:
            torch.multiprocessing.spawn(_ddp_worker, args=(world, init, backend, out), nprocs=world)
        got = torch.load(out)
    net = _ddp_net()
    x, target = _ddp_batch()
    torch.nn.functional.mse_loss(net(x), target).backward()
    ref = {n: p.grad for n, p in net.named_parameters()}
    return {**_compare(got, ref, 1e-4), "ranks": world, "backend": backend}


# ------------------------------------------------------------------------------------------- timing


def _timing(model: str, recipe: str) -> Callable[[Ctx], dict]:
    def measure(ctx: Ctx) -> dict:
        from mambaspike.bench import time_it
        from mambaspike.models.registry import build_model, count_parameters, loss_and_scores

        cfg, T, batch = _recipe_config(model, recipe, ctx.dry)
        repeats = 1 if ctx.dry else ctx.repeats
        torch.manual_seed(0)
        net = build_model(cfg).to(ctx.device).train()
        x, y = (t.to(ctx.device) for t in _inputs(cfg, T, batch))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def train_step():
            opt.zero_grad(set_to_none=True)
            loss_and_scores(net, x, y)[0].backward()
            opt.step()

        warmup = 0 if ctx.dry else 1
        train_s = time_it(train_step, repeats=repeats, warmup=warmup, device=ctx.device)
        net.eval()
        x1 = x[:, :1]

        def infer():
            with torch.no_grad():
                net(x1)

        latency_s = time_it(infer, repeats=repeats, warmup=warmup, device=ctx.device)
        return {
            "T": T,
            "batch": batch,
            "params": count_parameters(net),
            "train_samples_per_s": batch / train_s,
            "latency_ms": 1e3 * latency_s,
        }

    return measure


# ---------------------------------------------------------------------------------------------- run


def steps() -> list[Step]:
    """Every step of the device check, in order."""
    out = [
        Step("scan/cuda", _scan_check("cuda", (False,))),
        Step("scan/triton", _scan_check("triton")),
        Step("scan/parallel", _scan_check("parallel"), needs_cuda=False),
        Step("scan/auto", _scan_auto, needs_cuda=False),
        Step("lif/triton", _lif_check("triton")),
        Step("lif/auto", _lif_check("auto"), needs_cuda=False),
        Step("lif/recurrent", _lif_check("auto", recurrent=True), needs_cuda=False),
        Step("fused/mamba", _fused_mamba, needs_cuda=False),
        Step("fused/front-end", _fused_frontend, needs_cuda=False),
    ]
    for model in MODELS:
        out.append(Step(f"model/{model}/fp32", _model_check(model, False), needs_cuda=False))
        out.append(Step(f"model/{model}/bf16", _model_check(model, True), needs_cuda=False))
    out.append(Step("ddp/nccl", _ddp, needs_cuda=False))
    for recipe in RECIPE_INPUTS:
        for model in MODELS:
            out.append(Step(f"time/{recipe}/{model}", _timing(model, recipe), needs_cuda=False, kind="time"))
    return out


def _unavailable(name: str) -> str | None:
    if name == "scan/cuda" and not _mamba_ssm():
        return "skipped: mamba-ssm not installed (pip install 'mambaspike[cuda]')"
    if name in ("scan/triton", "lif/triton") and not _triton():
        return "skipped: triton not installed"
    return None


def run(args):
    dry = args.dry_run or not torch.cuda.is_available()
    ctx = Ctx(torch.device("cpu") if dry else torch.device("cuda"), dry, args.repeats)
    rows: list[dict] = []
    try:
        for step in steps():
            row = {"step": step.name, "kind": step.kind, "device": str(ctx.device)}
            if step.kind == "time" and args.no_timing:
                row["status"] = "skipped: --no-timing"
            elif dry and step.needs_cuda:
                row["status"] = NO_CUDA if not torch.cuda.is_available() else "skipped: --dry-run"
            elif (why := _unavailable(step.name)) is not None:
                row["status"] = why
            else:
                t0 = time.perf_counter()
                try:
                    with _no_tf32() if step.kind == "check" else contextlib.nullcontext():
                        row.update(step.fn(ctx))
                    row["status"] = "ok" if not dry else "ok (dry run: cpu, tiny shapes)"
                except Exception as e:
                    row["status"] = "FAILED"
                    row["error"] = f"{type(e).__name__}: {e}" if not isinstance(e, CheckFailed) else str(e)
                row["wall_s"] = time.perf_counter() - t0
            rows.append(row)
            yield row
            if row["status"] == "FAILED":
                raise CheckFailed(f"device check FAILED at step {step.name}: {row['error']}")
    finally:
        if args.out is not None:
            write(args.out, rows, ctx)


def write(out: Path, rows: list[dict], ctx: Ctx) -> None:
    """``out/gpu_check.json`` (environment and rows) and ``out/gpu_check.md`` (one table)."""
    from mambaspike.bench import environment

    out.mkdir(parents=True, exist_ok=True)
    env = {**environment(ctx.device), "dry_run": ctx.dry, "cuda_devices": torch.cuda.device_count()}
    (out / "gpu_check.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    cols = [
        "step",
        "status",
        "max_rel_err",
        "tol",
        "worst",
        "grad_cosine",
        "picked",
        "train_samples_per_s",
        "latency_ms",
        "wall_s",
    ]
    lines = [
        "# Device check",
        "",
        ", ".join(f"{k}: {v}" for k, v in env.items()),
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]

    def cell(v):
        return f"{v:.3g}" if isinstance(v, float) else ("" if v is None else str(v).replace("|", "/"))

    for r in rows:
        lines.append("| " + " | ".join(cell(r.get(c)) for c in cols) + " |")
    failed = [r for r in rows if r["status"] == "FAILED"]
    if failed:
        lines += ["", f"FAILED at {failed[0]['step']}: {failed[0]['error']}"]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
