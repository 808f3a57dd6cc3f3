"""Export the spiking front-end to NIR for neuromorphic tools (snnTorch, spikingjelly, ...).

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
  when the map size is a multiple of the output size; an average readout (``readout_pool="avg"``) ->
  ``nir.SumPool2d`` + ``nir.Scale``.

Not expressible in NIR, so never exported silently: **temporal max-pooling** (it changes the time base,
NIR graphs run at one rate), hence by default only the blocks before it (block 0 when
``temporal_pool > 1``; later blocks can be exported as their own graph with ``blocks=(1, n)``, running at
the pooled bin), the spike-to-activation interface and the **Mamba backbone** (no NIR primitive for a
selective scan, normalisations or gating).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mambaspike.errors import ExportError
from mambaspike.export.optional import require
from mambaspike.neurons.modules import LIF, LeakyIntegrator

BACKBONE_NOT_IN_NIR = (
    "the Mamba backbone (selective scan, RMSNorm, gating), the spike-to-activation interface and the "
    "classifier head cannot be expressed in NIR: only the spiking front-end is exported"
)


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of the one convolution equal to ``bn(conv(x))`` in eval mode (float64)."""
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    w = w * scale[:, None, None, None]
    b = (b - bn.running_mean.detach().double()) * scale + bn.bias.detach().double()
    return w.numpy(), b.numpy()


def check_neuron(lif: nn.Module) -> None:
    """An ``ExportError`` unless ``lif`` is a neuron NIR's LIF expresses (a hard-reset ``LIF``)."""
    if not isinstance(lif, LIF):
        hint = "NIR has no adaptive-threshold neuron; " if type(lif).__name__ == "ALIF" else ""
        raise ExportError(
            f"NIR export supports the 'lif' neuron only, got {type(lif).__name__} ({hint}a model trained with "
            "--set neuron=lif, or the mambaspike-paper variant, exports)"
        )
    if lif.soft_reset:
        raise ExportError("NIR's LIF resets to v_reset; a soft (subtractive) reset cannot be exported")


def lif_to_nir(lif: nn.Module, shape: tuple, bin_s: float):
    """``nir.LIF`` whose forward-Euler step at ``bin_s`` seconds equals ``lif``'s update (see the module
    docstring). ``shape``: the population's ``(C, H, W)``."""
    nir = require("nir")
    check_neuron(lif)
    beta = float(lif.beta.detach().double())
    tau = bin_s / (1.0 - beta)
    r = 1.0 if lif.decay_input else 1.0 / (1.0 - beta)
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    return nir.LIF(
        tau=full(tau),
        r=full(r),
        v_leak=full(0.0),
        v_threshold=full(float(lif.v_threshold.detach())),
        v_reset=full(lif.v_reset),
        metadata={"beta": beta, "dt_s": bin_s, "tau_ms": lif.tau, "discretisation": "forward Euler at dt_s"},
    )


def _pool_nodes(nir, pool: nn.Module, hw: tuple[int, int], c: int):
    """``[(suffix, node)]`` for max-pooling binary spikes (SumPool2d + Threshold) or the readout's
    average pooling (SumPool2d + Scale), or None."""
    if isinstance(pool, nn.MaxPool2d):
        k = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 2
        s = pool.stride if isinstance(pool.stride, tuple) else (pool.stride,) * 2
        p = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,) * 2
        if p != (0, 0) or pool.dilation not in (1, (1, 1)) or pool.ceil_mode:
            return None
    elif isinstance(pool, (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)):
        out = pool.output_size
        oh, ow = (out, out) if isinstance(out, int) else out
        if hw[0] % oh or hw[1] % ow:
            return None
        k = s = (hw[0] // oh, hw[1] // ow)
        p = (0, 0)
    else:
        return None
    out_hw = ((hw[0] - k[0]) // s[0] + 1, (hw[1] - k[1]) // s[1] + 1)
    nodes = [("pool_sum", nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p)))]
    if isinstance(pool, nn.AdaptiveAvgPool2d):  # the readout's mean spike count per region
        nodes.append(("pool_mean", nir.Scale(scale=np.full((c, *out_hw), 1.0 / (k[0] * k[1])))))
    else:
        nodes.append(("pool_any", nir.Threshold(threshold=np.full((c, *out_hw), 0.5))))
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
            ``temporal_pool == 1``, else the blocks up to the one the pooling follows, block 0 by default).
            A range may not cross the temporal pooling.

    Returns ``(graph, notes)``: ``notes`` lists, in words, what was not exported.
    """
    nir = require("nir")
    n = len(frontend.blocks)
    k_t = frontend.temporal_pool
    base_ms = frontend.blocks[0].lif.dt
    bin0_s = base_ms / 1000.0 if input_dt_s is None else float(input_dt_s)
    q = getattr(frontend, "pool_after", 0)  # the temporal pooling follows block q
    if blocks is None:  # the blocks before the temporal pooling (all of them when there is none)
        blocks = (0, n if k_t == 1 else q + 1)
    start, stop = blocks
    if start == 0 and getattr(frontend, "input_norm", None) is not None:
        raise ExportError(
            "NIR export: the front-end's input normalisation (input_norm='running', a division by the sample's "
            "event rate so far) has no NIR primitive; export --blocks 1:N, or a model with input_norm='none'"
        )
    if not 0 <= start < stop <= n:
        raise ExportError(f"NIR export: --blocks START:STOP must satisfy 0 <= START < STOP <= {n}, got {start}:{stop}")
    if k_t > 1 and start <= q < stop - 1:
        raise ExportError(
            f"NIR export: blocks {start}:{stop} cross the temporal max-pooling over {k_t} bins after block {q}, "
            f"which NIR cannot express (a NIR graph runs at one time step); export --blocks {start}:{q + 1} and "
            f"--blocks {q + 1}:{n} as separate graphs"
        )
    notes = [BACKBONE_NOT_IN_NIR]
    if k_t > 1:
        if start <= q:
            which = "block 0 only" if (start, stop) == (0, 1) else f"blocks {start}..{stop - 1}"
            notes.append(
                f"temporal max-pooling over {k_t} bins after block {q} has no NIR primitive: exported {which} "
                f"(its output is block {stop - 1}'s spatially pooled spikes, before temporal pooling); "
                f"blocks {q + 1}..{n - 1} run at {k_t}x the bin and can be exported with --blocks {q + 1}:{n}"
            )
        else:
            notes.append(
                f"blocks {start}..{stop - 1} run after temporal max-pooling over {k_t} bins, so one step "
                f"of this graph is {k_t} input bins ({bin0_s * k_t:g} s); the pooling itself is not exported"
            )
    c, h, w = input_shape
    nodes = {"input": nir.Input(input_type={"input": np.array([c, h, w])})}
    edges = []
    prev = "input"
    for i in range(start, stop):
        block = frontend.blocks[i]
        pre = f"block{i}_"
        if isinstance(block.lif, LeakyIntegrator):
            raise ExportError(
                f"NIR export: block {i} is the membrane readout (readout='membrane': leaky integrators whose "
                "potential the interface reads, not spikes), which is not exported; "
                + (f"export --blocks {start}:{i} (the spiking blocks before it), " if i > start else "")
                + "or a model with readout='spikes'"
            )
        check_neuron(block.lif)  # the neuron's error first: it names what exports
        if block.norm_kind != "batch":
            raise ExportError(
                f"NIR export: block {i} normalises each sample's current on its own "
                f"(current_norm={block.norm_kind!r}), "
                f"which has no NIR primitive; export --blocks {i + 1}:{n} (if any follow), or a model with "
                "current_norm='batch'"
            )
        wts, bias = fold_batchnorm(block.conv, block.bn)
        conv = block.conv
        nodes[pre + "conv"] = nir.Conv2d(
            input_shape=(h, w),
            weight=wts,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=bias,
        )
        c_out = wts.shape[0]
        h = (h + 2 * conv.padding[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) // conv.stride[0] + 1
        w = (w + 2 * conv.padding[1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) // conv.stride[1] + 1
        bin_s = bin0_s * block.lif.dt / base_ms
        nodes[pre + "lif"] = lif_to_nir(block.lif, (c_out, h, w), bin_s)
        edges += [(prev, pre + "conv"), (pre + "conv", pre + "lif")]
        if block.recurrent is not None:
            rw = block.recurrent.weight.detach().double().numpy()
            nodes[pre + "recurrent"] = nir.Conv2d(
                input_shape=(h, w),
                weight=rw,
                stride=1,
                padding=0,
                dilation=1,
                groups=1,
                bias=np.zeros(rw.shape[0]),
            )
            edges += [(pre + "lif", pre + "recurrent"), (pre + "recurrent", pre + "lif")]
        prev = pre + "lif"
        pooled = _pool_nodes(nir, block.pool, (h, w), c_out)
        if pooled is None:
            notes.append(
                f"block {i}'s spatial pooling ({block.pool}) from {h}x{w} has no exact NIR form: the graph "
                f"ends with block {i}'s spikes before that pooling"
            )
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
    meta = {
        "source": "mambaspike SpikingFrontEnd",
        "blocks": [start, stop],
        "input_dt_s": bin0_s,
        "not_exported": notes,
    }
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
    return graph, notes
