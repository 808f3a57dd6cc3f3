"""Spiking activity per layer: spikes per sample, firing rates, and firing rate over time.

``ActivityMonitor`` hooks every ``SpikingNeuron`` of a model (their ``forward`` returns
``(spikes [T, B, ...], state)``). A layer called once per time bin (a recurrent block) is followed
bin by bin: a pre-hook on the model resets each layer's time cursor at every forward pass.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mambaspike.neurons.modules import SpikingNeuron


class ActivityMonitor:
    """Context manager. After the forward passes inside it:

    - ``spikes[name]``: spikes emitted by that layer, summed over neurons, bins and samples;
    - ``slots[name]``: neuron-bins seen (neurons x bins x samples), the denominator of firing rates;
    - ``per_bin[name]``: ``[T_layer]`` spikes per bin summed over neurons and samples;
    - ``neurons[name]``: neurons in the layer (per sample);
    - ``samples``: samples seen (batch axis 1 of the time-first model input).
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.targets = [(n or "neuron", m) for n, m in model.named_modules() if isinstance(m, SpikingNeuron)]
        self.spikes: OrderedDict[str, float] = OrderedDict((n, 0.0) for n, _ in self.targets)
        self.slots: dict[str, float] = {n: 0.0 for n, _ in self.targets}
        self.per_bin: dict[str, torch.Tensor] = {n: torch.zeros(0, dtype=torch.float64) for n, _ in self.targets}
        self.neurons: dict[str, int] = {}
        self.samples = 0
        self._cursor: dict[str, int] = {}
        self._handles = []

    @property
    def spiking(self) -> bool:
        return bool(self.targets)

    def _pre(self, module, args):
        self.samples += int(args[0].shape[1])
        self._cursor = {n: 0 for n, _ in self.targets}

    def _hook_for(self, name: str):
        def hook(module, args, output):
            s = output[0].detach()  # (T, B, ...)
            T, B = s.shape[:2]
            self.spikes[name] += float(s.sum())
            self.slots[name] += float(s.numel())
            self.neurons[name] = int(s[0, 0].numel())
            per_t = s.flatten(1).sum(dim=1).double()  # (T,)
            start = self._cursor.get(name, 0)
            end = start + T
            if self.per_bin[name].numel() < end:
                grown = torch.zeros(end, dtype=torch.float64)
                grown[: self.per_bin[name].numel()] = self.per_bin[name]
                self.per_bin[name] = grown
            self.per_bin[name][start:end] += per_t
            self._cursor[name] = end

        return hook

    def __enter__(self):
        self._handles = [self.model.register_forward_pre_hook(self._pre)]
        self._handles += [m.register_forward_hook(self._hook_for(n)) for n, m in self.targets]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []

    def spikes_per_sample(self) -> float | None:
        if not self.spiking or not self.samples:
            return None
        return sum(self.spikes.values()) / self.samples

    def layer_rates(self) -> list[dict]:
        """One row per spiking layer: neurons, spikes per sample, firing rate (spikes per neuron per bin)."""
        n = max(self.samples, 1)
        return [
            {
                "layer": name,
                "neurons": self.neurons.get(name, 0),
                "spikes_per_sample": self.spikes[name] / n,
                "firing_rate": self.spikes[name] / self.slots[name] if self.slots[name] else 0.0,
            }
            for name in self.spikes
        ]

    def rates_over_time(self) -> dict[str, list[float]]:
        """Per layer, the firing rate in each of its bins (spikes per neuron per bin, mean over samples)."""
        n = max(self.samples, 1)
        return {name: (self.per_bin[name] / (n * max(self.neurons.get(name, 1), 1))).tolist() for name in self.per_bin}

    def activation_sparsity(self) -> float | None:
        """NeuroBench's activation sparsity over the spiking layers: 1 - spikes / neuron-bins."""
        slots = sum(self.slots.values())
        if not slots:
            return None
        return 1.0 - sum(self.spikes.values()) / slots


__all__ = ["ActivityMonitor"]
