"""Where one training step (forward + backward) spends its time, stage by stage, and how fast the
convolutions run against the machine's fp32 GEMM rate.

Measurement (:func:`stage_profile`): every module of a stage (:func:`stage_modules`) gets forward
pre/post hooks that open and close a ``torch.profiler.record_function("stage::NAME")`` range, and the
steps run under ``torch.profiler.profile`` (CPU activity). Forward time of a stage: the wall time of
its ranges minus the ranges nested in them (the innermost stage owns an operation). Backward time: the
autograd engine records every backward node it runs (``autograd::engine::evaluate_function: ...``)
with the sequence number of the forward operation that created the node; the node's wall time goes
to the stage whose range held that forward operation (custom autograd functions, such as the compiled
LIF kernels, are recorded the same way). What no stage holds, ``other``, is the rest of the step's
wall time: the loss, gradient accumulation into ``.grad`` (``AccumulateGrad`` nodes), the autograd
engine's own overhead and glue outside the stage modules. The fractions are of the profiled step's
wall time, so they sum to 1; of several profiled steps the fastest (the one other processes disturbed
least) is reported. The profiler's overhead per recorded operation (microseconds) inflates short
operations a little more than long ones.

Stages (those a model has): ``conv`` (the blocks' / stem's convolutions, the dense layers of 1-D
blocks), ``norm`` (the norm of a block's current, whichever of BatchNorm / GroupNorm / the running
per-sample norm it is, and the stem's BatchNorm), ``lif`` (LIF neurons, including the recurrent
connection and the per-bin loop of a recurrent block that does not take the fused recurrent kernel),
``relu``, ``pool`` (spatial pooling), ``temporal_pool`` (the front-end's / stem's own operations:
temporal pooling and the reshapes between blocks), ``input_norm``, ``interface``, ``backbone`` (Mamba
or LSTM/GRU), ``head``.

Convolution rate: the multiply-accumulates of the ``conv`` stage's ``Conv2d`` layers at the measured
shape (``out.numel() * C_in / groups * kH * kW`` per call, counted by forward hooks) for the forward,
plus one more for the weight gradient and one more for the input gradient where the input requires a
gradient (the first layer's input, the data, does not), divided by the ``conv`` stage's forward +
backward time. The GEMM rate is a square fp32 ``torch.matmul`` (``n^3`` MACs) on the same threads.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

STAGE_PREFIX = "stage::"
STAGES = (
    "conv",
    "norm",
    "lif",
    "relu",
    "pool",
    "temporal_pool",
    "input_norm",
    "interface",
    "backbone",
    "head",
    "other",
)
_POOLS = (nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d, nn.AvgPool2d)


def _block_stages(block: nn.Module) -> dict[nn.Module, str]:
    # the recurrent layer is not hooked: a hook on it turns off the fused recurrent kernel
    # (kernels.observed); called in the per-bin loop it runs inside the block, whose stage is ``lif``
    out = {block: "lif", block.conv: "conv", block.bn: "norm", block.lif: "lif"}
    if not isinstance(block.pool, nn.Identity):
        out[block.pool] = "pool"
    return out


def _stem_stages(stem: nn.Module) -> dict[nn.Module, str]:
    out: dict[nn.Module, str] = {stem: "temporal_pool"}
    for m in stem.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out[m] = "conv"
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            out[m] = "norm"
        elif isinstance(m, nn.ReLU):
            out[m] = "relu"
        elif isinstance(m, _POOLS):
            out[m] = "pool"
    return out


def stage_modules(model: nn.Module) -> dict[nn.Module, str]:
    """``{module: stage}`` for Mamba-Spike (``frontend``) and the baselines (``stem``); the innermost
    hooked module owns an operation. Other families raise ``ValueError``."""
    from mambaspike.layers.blocks import SpikingConvBlock

    out: dict[nn.Module, str] = {}
    if hasattr(model, "frontend"):
        fe = model.frontend
        out[fe] = "temporal_pool"
        if fe.input_norm is not None:
            out[fe.input_norm] = "input_norm"
        for block in fe.blocks:
            if not isinstance(block, SpikingConvBlock):
                raise ValueError(f"stage_modules: unknown front-end block {type(block).__name__}")
            out.update(_block_stages(block))
    elif hasattr(model, "stem"):
        out.update(_stem_stages(model.stem))
    else:
        raise ValueError(
            f"stage_modules: no stage breakdown for {type(model).__name__}; accepted: Mamba-Spike, mamba, lstm, gru"
        )
    seq = getattr(model, "backbone", None) or getattr(model, "rnn", None)
    out.update({model.interface: "interface", seq: "backbone", model.head: "head"})
    return out


def _hook_ranges(stages: dict[nn.Module, str]) -> list:
    handles = []
    for module, name in stages.items():
        stack: list = []

        def pre(mod, args, name=name, stack=stack):
            rf = torch.autograd.profiler.record_function(STAGE_PREFIX + name)
            rf.__enter__()
            stack.append(rf)

        def post(mod, args, output, stack=stack):
            stack.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles


def conv_macs(model: nn.Module, stages: dict[nn.Module, str], forward: Callable[[], object]) -> int:
    """Multiply-accumulates of one forward + backward through the ``conv`` stage's ``Conv2d`` layers,
    counted while ``forward()`` runs (see the module docstring)."""
    total = 0

    def hook(mod, args, output):
        nonlocal total
        fwd = output.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        total += fwd * (1 + int(mod.weight.requires_grad) + int(args[0].requires_grad))

    convs = [m for m, s in stages.items() if s == "conv" and isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_hook(hook) for m in convs]
    try:
        forward()
    finally:
        for h in handles:
            h.remove()
    return total


def _walk(events, stage: str | None, fwd_time: dict, seq_stage: dict) -> None:
    """Forward stage times (exclusive of nested stages) and ``sequence_nr -> (start, stage)``."""
    for e in events:
        s = stage
        if e.name.startswith(STAGE_PREFIX):
            s = e.name[len(STAGE_PREFIX) :]
            nested = _nested_stage_time(e.cpu_children)
            fwd_time[s] = fwd_time.get(s, 0.0) + e.time_range.elapsed_us() - nested
        elif s is not None and e.sequence_nr >= 0:
            start = e.time_range.start
            if e.sequence_nr not in seq_stage or seq_stage[e.sequence_nr][0] <= start:
                seq_stage[e.sequence_nr] = (start, s)  # the last op with this number created the node
        _walk(e.cpu_children, s, fwd_time, seq_stage)


def _nested_stage_time(events) -> float:
    t = 0.0
    for e in events:
        if e.name.startswith(STAGE_PREFIX):
            t += e.time_range.elapsed_us()
        else:
            t += _nested_stage_time(e.cpu_children)
    return t


def _step_breakdown(step_event, names: list[str]) -> dict[str, float]:
    """One profiled step's ``{"step_ms", "<stage>_ms", "other_ms"}``."""
    fwd_time: dict[str, float] = {}
    seq_stage: dict[int, tuple[float, str]] = {}
    _walk(step_event.cpu_children, None, fwd_time, seq_stage)
    bwd_time: dict[str, float] = {}
    stack = list(step_event.cpu_children)
    while stack:
        e = stack.pop()
        if e.name.startswith("autograd::engine::evaluate_function:"):
            if e.sequence_nr in seq_stage:
                st = seq_stage[e.sequence_nr][1]
                bwd_time[st] = bwd_time.get(st, 0.0) + e.time_range.elapsed_us()
        else:
            stack.extend(e.cpu_children)
    out = {"step_ms": step_event.time_range.elapsed_us() / 1e3}
    for st in names:
        out[f"{st}_ms"] = (fwd_time.get(st, 0.0) + bwd_time.get(st, 0.0)) / 1e3
    out["other_ms"] = out["step_ms"] - sum(out[f"{st}_ms"] for st in names)
    return out


def stage_profile(model: nn.Module, step: Callable[[], object], repeats: int = 3) -> dict[str, float]:
    """Profile ``repeats`` calls of ``step()`` (one forward + backward of ``model``, after one warm-up
    call) -> the fastest profiled step's ``{"step_ms": its wall ms under the profiler, "<stage>_ms":
    forward + backward ms of each stage the model has, "other_ms": the rest}`` (see the module
    docstring). The fastest step is the one other processes disturbed least."""
    from torch.profiler import ProfilerActivity, profile, record_function

    stages = stage_modules(model)
    step()
    handles = _hook_ranges(stages)
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                with record_function("step::train"):
                    step()
    finally:
        for h in handles:
            h.remove()
    names = [st for st in STAGES if st in set(stages.values())]
    steps = [e for e in prof.events() if e.cpu_parent is None and e.name == "step::train"]
    return min((_step_breakdown(e, names) for e in steps), key=lambda b: b["step_ms"])


def gemm_gmacs(n: int = 1024, repeats: int = 3) -> float:
    """fp32 ``torch.matmul`` of two ``[n, n]`` matrices on the current threads: GMAC/s (``n^3`` MACs)."""
    from mambaspike.bench import time_it

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    return n**3 / time_it(lambda: torch.matmul(a, b), repeats=repeats, warmup=1) / 1e9
