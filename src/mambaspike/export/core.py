"""Export a trained model for deployment (ONNX) and its spiking front-end for neuromorphic tools (NIR).

ONNX
----
``export_onnx(model, input_shape, T, path)`` writes the **inference path** (eval mode) of any registered
model: input ``frames [T, batch, C, H, W]`` -> output ``logits [batch, classes]``. The batch is dynamic;
the number of time bins ``T`` is fixed at export (the spiking neurons and the selective scan are loops
over time, unrolled by the tracer). Then onnxruntime runs the file on fresh inputs at two batch sizes
and the largest absolute difference to PyTorch's logits is returned; above ``atol`` it is an error.

While exporting (``export_mode``): spike functions are plain Heaviside steps (the surrogate gradient only
matters in backward), every fast backend (neurons, selective scan) is set to the plain torch
``"reference"`` path, and adaptive spatial pooling becomes the fixed max-pooling it amounts to at the
export input size. Everything is restored afterwards.

NIR
---
``frontend_to_nir(frontend, input_shape)`` expresses the spiking front-end in NIR (Pedersen et al.
2024) as a graph ``Input -> ... -> Output``:

- conv3x3 with its BatchNorm folded in (eval statistics) -> ``nir.Conv2d`` with bias;
- each LIF population -> ``nir.LIF`` (continuous time, seconds). Our discrete neuron
  ``h = beta*v + (1-beta)*x`` with ``beta = exp(-dt/tau)`` is mapped so that the forward-Euler step at
  our bin ``dt`` -- the discretisation snnTorch and spikingjelly use when they import NIR
  (snnTorch: ``beta = 1 - dt/tau_nir``, input scaled by ``r*dt/tau_nir``; spikingjelly: ``LIFNode(tau =
  tau_nir/dt)``, ``decay_input`` when ``r = 1``) -- reproduces it exactly: ``tau_nir = dt / (1 - beta)``,
  ``r = 1`` (``r = 1/(1-beta)`` when ``decay_input=False``), ``v_leak = 0`` (our membrane leaks to 0),
  ``v_threshold``, ``v_reset`` (hard reset). A soft (subtractive) reset has no NIR form. ``dt`` is the
  bin in seconds (``input_dt_s``); snnTorch's importer always simulates at 1e-4 s, spikingjelly's takes
  ``dt`` as an argument, so export with ``input_dt_s=1e-4`` for snnTorch;
- the recurrent 1x1 connection -> ``nir.Conv2d`` (no bias) in a LIF -> conv -> LIF cycle (one-step delay);
- spatial max-pooling of binary spikes -> ``nir.SumPool2d`` + ``nir.Threshold(0.5)`` (a spike if any input
  of the window spiked: exactly the max of binary values); the last block's adaptive max-pooling likewise
  when the map size is a multiple of the output size.

Not expressible in NIR, so never exported silently: **temporal max-pooling** (it changes the time base,
NIR graphs run at one rate), hence by default only the blocks before it (block 0 when
``temporal_pool > 1``; later blocks can be exported as their own graph with ``blocks=(1, n)``, running at
the pooled bin), the spike-to-activation interface and the **Mamba backbone** (no NIR primitive for a
selective scan, normalisations or gating).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mambaspike.errors import ExportError
from mambaspike.neurons.modules import LIF, SpikingNeuron

FORMATS = ("onnx", "nir")
BACKBONE_NOT_IN_NIR = (
    "the Mamba backbone (selective scan, RMSNorm, gating), the spike-to-activation interface and the "
    "classifier head cannot be expressed in NIR: only the spiking front-end is exported"
)


def _require(module: str, extra: str = "export"):
    try:
        return __import__(module)
    except ImportError:
        raise ExportError(
            f"{module} is not installed; install the optional dependencies with: pip install 'mambaspike[{extra}]'"
        ) from None


# --------------------------------------------------------------------------------------------
# Export mode: Heaviside spikes, reference backends, fixed pooling
# --------------------------------------------------------------------------------------------


class Heaviside(nn.Module):
    """The forward pass of every surrogate spike function: ``s = (x >= 0)``, as plain tensor ops."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x >= 0).to(x.dtype)


def _fixed_pool(pool: nn.Module, hw: tuple[int, int], where: str) -> nn.Module:
    out = pool.output_size
    oh, ow = (out, out) if isinstance(out, int) else out
    oh, ow = oh or hw[0], ow or hw[1]
    if hw[0] % oh or hw[1] % ow:
        raise ExportError(
            f"{where}: adaptive pooling from {hw[0]}x{hw[1]} to {oh}x{ow} has unequal windows and no fixed-pool "
            f"equivalent; export with an input size whose feature map is a multiple of {oh}x{ow}"
        )
    k = (hw[0] // oh, hw[1] // ow)
    return nn.MaxPool2d(k, k) if isinstance(pool, nn.AdaptiveMaxPool2d) else nn.AvgPool2d(k, k)


@contextmanager
def export_mode(model: nn.Module, example: torch.Tensor):
    """Within the block, ``model`` runs its inference path with tracer-friendly parts (see the module
    docstring); ``example`` (a valid input) fixes the adaptive-pooling input sizes. Restored on exit."""
    undo = []
    was_training = model.training
    model.eval()
    try:
        for m in model.modules():
            if isinstance(m, SpikingNeuron):
                if hasattr(m, "backend"):
                    undo.append((m, "backend", m.backend))
                    m.backend = "reference"
                if isinstance(getattr(m, "spike_fn", None), nn.Module):
                    undo.append((m, "spike_fn", m.spike_fn))
                    m.spike_fn = Heaviside()
            cfg = getattr(m, "cfg", None)
            if hasattr(cfg, "scan_backend"):
                undo.append((cfg, "scan_backend", cfg.scan_backend))
                cfg.scan_backend = "reference"
        # adaptive pooling: record its input size on the example, then swap in the fixed pool
        sizes, hooks = {}, []
        adaptive = [(n, m) for n, m in model.named_modules()
                    if isinstance(m, (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d))]  # fmt: skip
        for name, m in adaptive:
            record = lambda mod, inp, name=name: sizes.update({name: inp[0].shape[-2:]})  # noqa: E731
            hooks.append(m.register_forward_pre_hook(record))
        with torch.no_grad():
            model(example)
        for h in hooks:
            h.remove()
        for name, m in adaptive:
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            undo.append((parent, attr, m))
            parent._modules[attr] = _fixed_pool(m, tuple(sizes[name]), name)
        yield model
    finally:
        for obj, attr, value in reversed(undo):
            if isinstance(obj, nn.Module) and attr in obj._modules:
                obj._modules[attr] = value
            else:
                setattr(obj, attr, value)
        model.train(was_training)


# --------------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------------


def example_input(input_shape, T: int, batch: int, seed: int = 0) -> torch.Tensor:
    """Event-count-like frames ``[T, batch, C, H, W]`` (small non-negative integers)."""
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((T, batch, *input_shape), 0.3), generator=g)


def export_onnx(
    model: nn.Module,
    input_shape: tuple,
    T: int,
    path: str | Path,
    opset: int = 17,
    atol: float = 1e-4,
    check_batches: tuple[int, ...] = (1, 3),
) -> dict:
    """Write ``model``'s inference path to ``path`` and check it with onnxruntime.

    Returns ``{"path", "T", "max_abs_diff", "atol", "batches"}``; raises ``ExportError`` when the
    largest absolute difference of the logits exceeds ``atol``.
    """
    onnx = _require("onnx")
    ort = _require("onnxruntime")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = example_input(input_shape, T, 2)
    with export_mode(model, example):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about unrolled Python loops
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["frames"],
                output_names=["logits"],
                dynamic_axes={"frames": {1: "batch"}, "logits": {0: "batch"}},
            )
        onnx.checker.check_model(str(path), full_check=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        diff = 0.0
        for i, b in enumerate(check_batches):
            x = example_input(input_shape, T, b, seed=1 + i)
            with torch.no_grad():
                ref = model(x).float().numpy()
            (out,) = session.run(["logits"], {"frames": x.numpy()})
            diff = max(diff, float(np.abs(out - ref).max()))
    result = {"path": str(path), "T": T, "max_abs_diff": diff, "atol": atol, "batches": list(check_batches)}
    if not diff <= atol:
        raise ExportError(f"{path}: onnxruntime's logits differ from PyTorch's by {diff:.3g} > tolerance {atol:g}")
    return result


# --------------------------------------------------------------------------------------------
# NIR
# --------------------------------------------------------------------------------------------


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of the one convolution equal to ``bn(conv(x))`` in eval mode (float64)."""
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    w = w * scale[:, None, None, None]
    b = (b - bn.running_mean.detach().double()) * scale + bn.bias.detach().double()
    return w.numpy(), b.numpy()


def lif_to_nir(lif: nn.Module, shape: tuple, bin_s: float):
    """``nir.LIF`` whose forward-Euler step at ``bin_s`` seconds equals ``lif``'s update (see the module
    docstring). ``shape``: the population's ``(C, H, W)``."""
    nir = _require("nir")
    if not isinstance(lif, LIF):
        raise ExportError(f"NIR export supports the 'lif' neuron only, got {type(lif).__name__}")
    if lif.soft_reset:
        raise ExportError("NIR's LIF resets to v_reset; a soft (subtractive) reset cannot be exported")
    beta = float(lif.beta.detach().double())
    tau = bin_s / (1.0 - beta)
    r = 1.0 if lif.decay_input else 1.0 / (1.0 - beta)
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    return nir.LIF(
        tau=full(tau), r=full(r), v_leak=full(0.0),
        v_threshold=full(float(lif.v_threshold.detach())), v_reset=full(lif.v_reset),
        metadata={"beta": beta, "dt_s": bin_s, "tau_ms": lif.tau, "discretisation": "forward Euler at dt_s"},
    )  # fmt: skip


def _pool_nodes(nir, pool: nn.Module, hw: tuple[int, int], c: int):
    """``[(suffix, node)]`` for max-pooling binary spikes (SumPool2d + Threshold), or None."""
    if isinstance(pool, nn.MaxPool2d):
        k = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 2
        s = pool.stride if isinstance(pool.stride, tuple) else (pool.stride,) * 2
        p = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,) * 2
        if p != (0, 0) or pool.dilation not in (1, (1, 1)) or pool.ceil_mode:
            return None
    elif isinstance(pool, nn.AdaptiveMaxPool2d):
        out = pool.output_size
        oh, ow = (out, out) if isinstance(out, int) else out
        if hw[0] % oh or hw[1] % ow:
            return None
        k = s = (hw[0] // oh, hw[1] // ow)
        p = (0, 0)
    else:
        return None
    out_hw = ((hw[0] - k[0]) // s[0] + 1, (hw[1] - k[1]) // s[1] + 1)
    nodes = [
        ("pool_sum", nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))),
        ("pool_any", nir.Threshold(threshold=np.full((c, *out_hw), 0.5))),
    ]
    return nodes, out_hw


def frontend_to_nir(
    frontend: nn.Module,
    input_shape: tuple,
    input_dt_s: float | None = None,
    blocks: tuple[int, int] | None = None,
):
    """The spiking front-end (or the blocks ``[start, stop)`` of it) as a ``nir.NIRGraph``.

    Args:
        frontend: a ``SpikingFrontEnd`` (its BatchNorm statistics are folded, so call it trained).
        input_shape: ``(C, H, W)`` of one input bin of block ``start``.
        input_dt_s: seconds represented by one bin of the model's input (default: the model's ``dt`` in
            ms / 1000). Blocks after the temporal pooling run at ``temporal_pool`` times that bin.
        blocks: the block range; default all blocks that share the input's time base (all blocks when
            ``temporal_pool == 1``, else block 0). A range may not cross the temporal pooling.

    Returns ``(graph, notes)``: ``notes`` lists, in words, what was not exported.
    """
    nir = _require("nir")
    n = len(frontend.blocks)
    k_t = frontend.temporal_pool
    base_ms = frontend.blocks[0].lif.dt
    bin0_s = base_ms / 1000.0 if input_dt_s is None else float(input_dt_s)
    if blocks is None:
        blocks = (0, n if k_t == 1 else 1)
    start, stop = blocks
    if not 0 <= start < stop <= n:
        raise ExportError(f"NIR export: --blocks START:STOP must satisfy 0 <= START < STOP <= {n}, got {start}:{stop}")
    if k_t > 1 and start == 0 and stop > 1:
        raise ExportError(
            f"NIR export: blocks {start}:{stop} cross the temporal max-pooling over {k_t} bins after block 0, "
            f"which NIR cannot express (a NIR graph runs at one time step); export --blocks 0:1 and "
            f"--blocks 1:{n} as separate graphs"
        )
    notes = [BACKBONE_NOT_IN_NIR]
    if k_t > 1:
        if start == 0:
            notes.append(f"temporal max-pooling over {k_t} bins after block 0 has no NIR primitive: exported block 0 "
                         f"only (its output is block 0's spatially pooled spikes, before temporal pooling); "
                         f"blocks 1..{n - 1} run at {k_t}x the bin and can be exported with --blocks 1:{n}")  # fmt: skip
        else:
            notes.append(f"blocks {start}..{stop - 1} run after temporal max-pooling over {k_t} bins, so one step "
                         f"of this graph is {k_t} input bins ({bin0_s * k_t:g} s); the pooling itself is not exported")
    c, h, w = input_shape
    nodes = {"input": nir.Input(input_type={"input": np.array([c, h, w])})}
    edges = []
    prev = "input"
    for i in range(start, stop):
        block = frontend.blocks[i]
        pre = f"block{i}_"
        wts, bias = fold_batchnorm(block.conv, block.bn)
        conv = block.conv
        nodes[pre + "conv"] = nir.Conv2d(
            input_shape=(h, w), weight=wts, stride=conv.stride, padding=conv.padding,
            dilation=conv.dilation, groups=conv.groups, bias=bias,
        )  # fmt: skip
        c_out = wts.shape[0]
        h = (h + 2 * conv.padding[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) // conv.stride[0] + 1
        w = (w + 2 * conv.padding[1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) // conv.stride[1] + 1
        bin_s = bin0_s * block.lif.dt / base_ms
        nodes[pre + "lif"] = lif_to_nir(block.lif, (c_out, h, w), bin_s)
        edges += [(prev, pre + "conv"), (pre + "conv", pre + "lif")]
        if block.recurrent is not None:
            rw = block.recurrent.weight.detach().double().numpy()
            nodes[pre + "recurrent"] = nir.Conv2d(
                input_shape=(h, w), weight=rw, stride=1, padding=0, dilation=1, groups=1,
                bias=np.zeros(rw.shape[0]),
            )  # fmt: skip
            edges += [(pre + "lif", pre + "recurrent"), (pre + "recurrent", pre + "lif")]
        prev = pre + "lif"
        pooled = _pool_nodes(nir, block.pool, (h, w), c_out)
        if pooled is None:
            notes.append(f"block {i}'s spatial pooling ({block.pool}) from {h}x{w} has no exact NIR form: the graph "
                         f"ends with block {i}'s spikes before that pooling")  # fmt: skip
            c = c_out
            stop = i + 1
            break
        (s1, n1), (s2, n2) = pooled[0]
        nodes[pre + s1], nodes[pre + s2] = n1, n2
        edges += [(prev, pre + s1), (pre + s1, pre + s2)]
        prev = pre + s2
        c, (h, w) = c_out, pooled[1]
    nodes["output"] = nir.Output(output_type={"output": np.array([c, h, w])})
    edges.append((prev, "output"))
    meta = {"source": "mambaspike SpikingFrontEnd", "blocks": [start, stop], "input_dt_s": bin0_s,
            "not_exported": notes}  # fmt: skip
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
    return graph, notes


# --------------------------------------------------------------------------------------------
# A trained run
# --------------------------------------------------------------------------------------------


def run_time_bins(run: dict) -> int:
    from mambaspike.data.frames import num_bins

    t = run["train"]
    return num_bins(t["time_window_us"], t["dt_us"])


def export_run(
    run_dir: str | Path,
    fmt: str,
    output: str | Path | None = None,
    atol: float = 1e-4,
    blocks: tuple[int, int] | None = None,
    input_dt_s: float | None = None,
    log=print,
) -> dict:
    """Export the validation-selected checkpoint of a training run (``mambaspike export``)."""
    from mambaspike.training.run import load_run

    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    loaded = load_run(run_dir)
    model = loaded.model("best")
    run = loaded.record
    cfg = run["model"]
    input_shape = tuple(cfg["input_shape"])
    out = Path(output) if output is not None else Path(run_dir) / f"model.{fmt}"
    if fmt == "onnx":
        if blocks is not None or input_dt_s is not None:
            raise ExportError("--blocks and --bin-seconds apply to --format nir only")
        T = run_time_bins(run)
        res = export_onnx(model, input_shape, T, out, atol=atol)
        log(f"wrote {out}: {cfg['name']} inference path, input frames [T={T}, batch, {', '.join(map(str, input_shape))}] "
            f"-> logits [batch, {cfg['num_classes']}] (batch dynamic, T fixed)")  # fmt: skip
        log(f"onnxruntime vs PyTorch: max abs diff {res['max_abs_diff']:.3g} (tolerance {atol:g}, batches "
            f"{', '.join(map(str, res['batches']))})")  # fmt: skip
        return res
    nir = _require("nir")
    frontend = getattr(model, "frontend", None)
    if frontend is None or not hasattr(frontend, "blocks"):
        raise ExportError(
            f"model {cfg['name']!r} has no spiking front-end; NIR export needs a spiking model (mambaspike)"
        )
    shape = input_shape
    if blocks is not None and blocks[0] > 0:
        with torch.no_grad():  # the input shape of the first exported block
            x = torch.zeros(1, 1, *input_shape)
            for b in frontend.blocks[: blocks[0]]:
                x, _ = b(x)
        shape = tuple(x.shape[2:])
    graph, notes = frontend_to_nir(frontend, shape, input_dt_s=input_dt_s, blocks=blocks)
    out.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(out), graph)
    lifs = [k for k, v in graph.nodes.items() if isinstance(v, nir.LIF)]
    log(f"wrote {out}: NIR graph of the spiking front-end, blocks {graph.metadata['blocks'][0]}.."
        f"{graph.metadata['blocks'][1] - 1}, {len(graph.nodes)} nodes ({len(lifs)} LIF), input {list(shape)}")  # fmt: skip
    for note in notes:
        log(f"not exported: {note}")
    return {"path": str(out), "nodes": list(graph.nodes), "notes": notes}


__all__ = ["ExportError", "FORMATS", "export_mode", "export_onnx", "frontend_to_nir", "fold_batchnorm",
           "lif_to_nir", "export_run", "Heaviside"]  # fmt: skip
