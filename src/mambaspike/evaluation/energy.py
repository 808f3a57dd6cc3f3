"""Operation counts and a compute-only energy estimate per layer (MACs vs ACs).

Every ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` and ``nn.RNN``/``nn.LSTM``/``nn.GRU`` of a model is
hooked while ``OpCounter`` is active (a Mamba block's ``dt_proj``, whose weight the block applies
without calling it, through a hook on the block). For each call the hook records

- ``dense_ops``: the multiply-accumulates a dense accelerator performs (every input element times
  every weight it meets, zeros included; zero padding of convolutions is not counted) — NeuroBench's
  "Dense" synaptic operations;
- ``effective_ops``: the same count over the non-zero input elements only (event-driven hardware
  skips zeros) — NeuroBench's "effective" synaptic operations;
- whether the input was **binary** (every element 0 or 1), detected at run time per call. Binary
  inputs (spikes) need no multiplication: each non-zero input times weight is an accumulate (AC);
  any other input is a multiply-accumulate (MAC).

Energy (picojoules): ``4.6 pJ * MACs + 0.9 pJ * ACs`` with the 45 nm FP32 figures of Horowitz
(ISSCC 2014), MACs counted dense for real-valued inputs and ACs counted effective for binary inputs.
It is a **compute-only estimate**: memory traffic, neuron state updates, normalisations, the
selective scan and element-wise operations are not counted. Biases are not counted. Recurrent layers
(``nn.LSTM``/``nn.GRU``/``nn.RNN``) are counted analytically, dense, as MACs (gates x hidden x
(input + hidden) per step and layer).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PJ_PER_MAC = 4.6  # 45 nm, 32-bit float multiply (3.7 pJ) + add (0.9 pJ); Horowitz, ISSCC 2014
PJ_PER_AC = 0.9  # 45 nm, 32-bit float add
ENERGY_NOTE = (
    "compute-only estimate: 4.6 pJ/MAC and 0.9 pJ/AC (45 nm FP32, Horowitz 2014) for Conv/Linear/RNN layers; "
    "AC only where the layer's input was binary spikes (detected at run time); memory access, neuron updates, "
    "norms, the selective scan and element-wise operations are not counted"
)

CONNECTION_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.RNNBase)


@dataclass
class LayerOps:
    """Operation counts of one layer, summed over every call while counting."""

    name: str
    kind: str  # "Linear", "Conv2d", ...
    calls: int = 0
    binary_calls: int = 0  # calls whose input was all 0/1
    dense_macs: float = 0.0  # dense ops of calls with real-valued input
    effective_macs: float = 0.0  # ops on non-zero inputs of calls with real-valued input
    dense_acs: float = 0.0  # dense ops of calls with binary input (what a dense accelerator would do)
    # energy uses dense_macs (a real-valued input is multiplied everywhere) and effective_acs (spikes only)
    effective_acs: float = 0.0  # ops on spikes (non-zero binary inputs)

    @property
    def input(self) -> str:
        if self.binary_calls == 0:
            return "real"
        return "spikes" if self.binary_calls == self.calls else "mixed"


def is_binary(x: torch.Tensor) -> bool:
    """True when every element of ``x`` is 0 or 1 (spikes)."""
    return bool(((x == 0) | (x == 1)).all())


def _weight_pattern(w: torch.Tensor) -> torch.Tensor:
    return (w != 0).to(torch.float32)


def _conv_ops(layer: nn.Module, x: torch.Tensor, nd: int) -> tuple[float, float]:
    conv = F.conv1d if nd == 1 else F.conv2d
    w = _weight_pattern(layer.weight.detach())
    ones_w = torch.ones_like(w)
    if layer.padding_mode != "zeros":
        raise NotImplementedError(f"op counting: padding_mode={layer.padding_mode!r} is not supported")
    kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    x = x.detach().float()
    dense = float(conv(torch.ones_like(x), ones_w, **kw).sum())
    effective = float(conv((x != 0).float(), w, **kw).sum())
    return dense, effective


def _linear_ops(layer: nn.Linear, x: torch.Tensor) -> tuple[float, float]:
    w = _weight_pattern(layer.weight.detach())  # (out, in)
    fan_out = w.sum(dim=0)  # (in,) non-zero weights each input element meets
    x = x.detach().reshape(-1, x.shape[-1])
    dense = float(x.shape[0] * w.numel())
    effective = float(((x != 0).float() @ fan_out).sum())
    return dense, effective


def _rnn_ops(layer: nn.RNNBase, x: torch.Tensor) -> float:
    gates = {"LSTM": 4, "GRU": 3}.get(layer.mode, 1)
    steps = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]  # B * L (or L unbatched)
    h = layer.hidden_size
    dirs = 2 if layer.bidirectional else 1
    total = 0
    for i in range(layer.num_layers):
        d_in = layer.input_size if i == 0 else h * dirs
        total += dirs * gates * h * (d_in + h)
    return float(steps * total)


def layer_ops(layer: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """``(dense_ops, effective_ops)`` of one call of ``layer`` on input ``x``."""
    if isinstance(layer, nn.Conv2d):
        return _conv_ops(layer, x, 2)
    if isinstance(layer, nn.Conv1d):
        return _conv_ops(layer, x, 1)
    if isinstance(layer, nn.Linear):
        return _linear_ops(layer, x)
    if isinstance(layer, nn.RNNBase):
        ops = _rnn_ops(layer, x)
        return ops, ops
    raise TypeError(f"op counting: unsupported layer type {type(layer).__name__}")


class OpCounter:
    """Context manager counting the operations of every Conv/Linear/RNN layer of ``model`` (forward
    hooks). ``layers`` maps module names to ``LayerOps``; ``samples`` counts the samples seen (the
    batch dimension of the model input, axis 1 for time-first input, set by ``time_first``)."""

    def __init__(self, model: nn.Module, time_first: bool = True):
        self.model = model
        self.batch_axis = 1 if time_first else 0
        self.layers: OrderedDict[str, LayerOps] = OrderedDict()
        self.samples = 0
        self._handles = []
        from mambaspike.ssm.mamba import MambaBlock

        # Mamba's dt_proj weight is applied without calling the module (its bias is added in the
        # scan): counted by a hook on the block instead, from the block's input tokens
        self._dt_blocks = [(n, m) for n, m in model.named_modules() if isinstance(m, MambaBlock)]
        skip = {id(m.dt_proj) for _, m in self._dt_blocks}
        self._targets = [
            (n, m) for n, m in model.named_modules() if isinstance(m, CONNECTION_TYPES) and id(m) not in skip
        ]
        for n, m in model.named_modules():
            if isinstance(m, CONNECTION_TYPES):
                self.layers[n] = LayerOps(n, type(m).__name__)

    def _pre(self, module, args):
        self.samples += int(args[0].shape[self.batch_axis])

    def _hook_for(self, name: str):
        def hook(module, args, output):
            x = args[0]
            dense, effective = layer_ops(module, x)
            rec = self.layers[name]
            rec.calls += 1
            if not isinstance(module, nn.RNNBase) and is_binary(x):
                rec.binary_calls += 1
                rec.dense_acs += dense
                rec.effective_acs += effective
            else:
                rec.dense_macs += dense
                rec.effective_macs += effective

        return hook

    def _dt_hook_for(self, name: str):
        def hook(block, args, output):
            x = args[0]  # (B, L, d_model): one dt_proj product per token, real-valued input
            tokens = x.numel() // x.shape[-1]
            w = block.dt_proj.weight.detach()
            rec = self.layers[f"{name}.dt_proj"]
            rec.calls += 1
            rec.dense_macs += float(tokens * w.numel())
            rec.effective_macs += float(tokens * int((w != 0).sum()))

        return hook

    def __enter__(self):
        self._handles = [self.model.register_forward_pre_hook(self._pre)]
        self._handles += [m.register_forward_hook(self._hook_for(n)) for n, m in self._targets]
        self._handles += [m.register_forward_hook(self._dt_hook_for(n)) for n, m in self._dt_blocks]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []

    def report(self) -> dict:
        """Per-sample counts and energy per layer plus totals (see :func:`energy_report`)."""
        return energy_report(list(self.layers.values()), self.samples)


def energy_report(layers: list[LayerOps], samples: int) -> dict:
    """Per-sample operation counts and energy (pJ) per layer and in total.

    Energy per layer = ``PJ_PER_MAC * macs + PJ_PER_AC * acs`` (per sample), where ``macs`` are the
    dense MACs of calls with real-valued input and ``acs`` the effective ACs (one per spike and
    non-zero weight) of calls with binary input. ``effective_macs`` / ``dense_acs`` are given too, and
    ``synops_*`` in NeuroBench's terms (Effective_MACs, Effective_ACs, Dense).
    """
    n = max(samples, 1)
    rows = []
    for rec in layers:
        if rec.calls == 0:
            continue
        macs, acs = rec.dense_macs / n, rec.effective_acs / n
        rows.append(
            {
                "layer": rec.name,
                "type": rec.kind,
                "input": rec.input,
                "macs": macs,
                "acs": acs,
                "effective_macs": rec.effective_macs / n,
                "dense_acs": rec.dense_acs / n,
                "energy_pj": PJ_PER_MAC * macs + PJ_PER_AC * acs,
            }
        )
    total = {k: sum(r[k] for r in rows) for k in ("macs", "acs", "effective_macs", "dense_acs", "energy_pj")}
    total["synops_effective_macs"] = total["effective_macs"]
    total["synops_effective_acs"] = total["acs"]
    total["synops_dense"] = total["macs"] + total["dense_acs"]
    return {
        "per_sample": True,
        "samples": samples,
        "layers": rows,
        "total": total,
        "pj_per_mac": PJ_PER_MAC,
        "pj_per_ac": PJ_PER_AC,
        "note": ENERGY_NOTE,
    }


def footprint_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer (NeuroBench's ``footprint``)."""
    return sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )


__all__ = [
    "OpCounter",
    "LayerOps",
    "energy_report",
    "footprint_bytes",
    "is_binary",
    "layer_ops",
    "PJ_PER_MAC",
    "PJ_PER_AC",
    "ENERGY_NOTE",
]
