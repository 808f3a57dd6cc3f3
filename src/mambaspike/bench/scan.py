"""``mambaspike bench scan``: selective scan, reference loop vs each fast backend (and mambapy).

One row per (backend, pass, L): ``name`` (the fast backend), ``pass`` (``fwd`` or ``fwd+bwd``),
``L``, ``reference_s``, ``fast_s``, ``speedup`` (reference / fast), ``mambapy_s`` and
``mambapy_speedup`` (mambapy / fast; when ``mambapy`` is installed — the ``bench`` extra),
``reference_peak_mb`` / ``fast_peak_mb`` / ``mambapy_peak_mb`` (extra peak resident memory of one
call on top of its inputs, each measured in a fresh process) and
``max_rel_diff`` (largest difference of outputs and gradients to the reference, relative to the
reference's largest magnitude).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from mambaspike.bench import peak_memory_mb, time_it
from mambaspike.ssm.scan import available_backends, selective_scan

DESCRIPTION = "selective scan: reference loop vs compiled backends (and mambapy), forward and forward+backward"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--L", type=int, nargs="+", default=[64, 256, 1024, 4096], help="sequence lengths")
    p.add_argument("--batch", type=int, default=16, help="batch size B")
    p.add_argument("--d-inner", type=int, default=256, help="channels D")
    p.add_argument("--d-state", type=int, default=16, help="state size N")
    p.add_argument("--passes", nargs="+", choices=["fwd", "fwd+bwd"], default=["fwd", "fwd+bwd"])
    p.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median)")
    p.add_argument("--no-mambapy", action="store_true", help="skip mambapy even when installed")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")


def make_inputs(Bs: int, D: int, N: int, L: int, seed: int = 0) -> dict:
    """Mamba-like inputs: ``u, delta, z [B, D, L]``, ``A [D, N]``, ``B, C [B, N, L]``, ``D, delta_bias [D]``."""
    g = torch.Generator().manual_seed(seed)
    A = -torch.arange(1, N + 1, dtype=torch.float32).repeat(D, 1)
    t = dict(
        u=torch.randn(Bs, D, L, generator=g),
        delta=torch.randn(Bs, D, L, generator=g) * 0.5 - 2,
        A=A,
        B=torch.randn(Bs, N, L, generator=g),
        C=torch.randn(Bs, N, L, generator=g),
        D=torch.ones(D),
        z=torch.randn(Bs, D, L, generator=g),
        delta_bias=torch.zeros(D),
    )
    for v in t.values():
        v.requires_grad_(True)
    return t


def _call(backend: str, t: dict) -> torch.Tensor:
    return selective_scan(
        t["u"],
        t["delta"],
        t["A"],
        t["B"],
        t["C"],
        t["D"],
        t["z"],
        t["delta_bias"],
        delta_softplus=True,
        backend=backend,
    )


def _mambapy_call(t: dict) -> torch.Tensor:
    """The same computation with mambapy's parallel (Blelloch) scan, as in mambapy's ``selective_scan``."""
    from mambapy.pscan import pscan

    x = t["u"].transpose(1, 2)  # (B, L, D)
    delta = F.softplus(t["delta"] + t["delta_bias"][:, None]).transpose(1, 2)  # (B, L, D)
    Bm, Cm = t["B"].transpose(1, 2), t["C"].transpose(1, 2)  # (B, L, N)
    deltaA = torch.exp(delta.unsqueeze(-1) * t["A"])  # (B, L, D, N)
    BX = delta.unsqueeze(-1) * Bm.unsqueeze(2) * x.unsqueeze(-1)  # (B, L, D, N)
    hs = pscan(deltaA, BX)
    y = (hs @ Cm.unsqueeze(-1)).squeeze(3) + t["D"] * x  # (B, L, D)
    return (y * F.silu(t["z"].transpose(1, 2))).transpose(1, 2)  # (B, D, L)


def _job(fn, t: dict, pass_: str):
    gy = torch.randn(t["u"].shape, generator=torch.Generator().manual_seed(1))  # the same for every backend

    def job():
        if pass_ == "fwd":
            with torch.no_grad():
                return fn(t)
        y = fn(t)
        return torch.autograd.grad(y, list(t.values()), gy)

    return job


def _results(fn, t, pass_):
    out = _job(fn, t, pass_)()
    return [out] if pass_ == "fwd" else list(out)


def _max_rel_diff(ref: list, fast: list) -> float:
    return max(float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)) for a, b in zip(fast, ref))


def _peak_child(which: str, Bs: int, D: int, N: int, L: int, pass_: str, threads: int):
    torch.set_num_threads(threads)
    fn = _mambapy_call if which == "mambapy" else (lambda t: _call(which, t))
    _job(fn, make_inputs(1, 1, 1, 2), pass_)()  # load kernels / start thread pools outside the measurement
    t = make_inputs(Bs, D, N, L)
    return peak_memory_mb(_job(fn, t, pass_))


def _peak_mb(which: str, args, L: int, pass_: str) -> float | None:
    """Extra peak memory of one call, measured in a fresh process (in this one, memory freed by earlier
    calls stays resident and would be reused unseen)."""
    if args.no_memory:
        return None
    import multiprocessing
    import os

    # glibc: serve every allocation >= 64 KiB by mmap, so freed tensors leave the resident set at once
    old = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(
                _peak_child, (which, args.batch, args.d_inner, args.d_state, L, pass_, torch.get_num_threads())
            )
    finally:
        if old is None:
            del os.environ["MALLOC_MMAP_THRESHOLD_"]
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = old


def _mambapy_available() -> bool:
    try:
        import mambapy.pscan  # noqa: F401
    except Exception:
        return False
    return True


def run(args):
    fast = [b for b in available_backends() if b != "reference"]
    use_mambapy = not args.no_mambapy and _mambapy_available()
    for L in args.L:
        t = make_inputs(args.batch, args.d_inner, args.d_state, L)
        for pass_ in args.passes:
            ref_job = _job(lambda t: _call("reference", t), t, pass_)
            row_common = {"pass": pass_, "L": L, "B": args.batch, "D": args.d_inner, "N": args.d_state}
            ref_s = time_it(ref_job, repeats=args.repeats)
            ref_mb = _peak_mb("reference", args, L, pass_)
            ref_out = _results(lambda t: _call("reference", t), t, pass_)
            mp_s = mp_mb = None
            if use_mambapy:
                mp_job = _job(_mambapy_call, t, pass_)
                mp_s = time_it(mp_job, repeats=args.repeats)
                mp_mb = _peak_mb("mambapy", args, L, pass_)
            for name in fast or ["reference"]:
                job = _job(lambda t, n=name: _call(n, t), t, pass_)
                fast_s = time_it(job, repeats=args.repeats)
                yield {
                    "name": name,
                    **row_common,
                    "reference_s": ref_s,
                    "fast_s": fast_s,
                    "speedup": ref_s / fast_s,
                    "mambapy_s": mp_s,
                    "mambapy_speedup": None if mp_s is None else mp_s / fast_s,
                    "reference_peak_mb": ref_mb,
                    "fast_peak_mb": _peak_mb(name, args, L, pass_),
                    "mambapy_peak_mb": mp_mb,
                    "max_rel_diff": _max_rel_diff(ref_out, _results(lambda t, n=name: _call(n, t), t, pass_)),
                }
