"""NeuroBench's own ``Benchmark`` on our models: an adapter that lets it see our spiking neurons.

NeuroBench (2.3) finds activations by ``isinstance`` against ``model.activation_modules`` (``nn.ReLU``,
``nn.Sigmoid`` and what ``add_activation_module`` adds) and records each one's forward output with a
``NeuronHook``; ``ActivationSparsity`` counts the zeros of those outputs. Our neurons
(:class:`mambaspike.neurons.modules.SpikingNeuron`) are not snnTorch modules and return a tuple
``(spikes [T, B, ...], state)``, so out of the box NeuroBench finds no activation in a Mamba-Spike model
and reports a sparsity of 0.0. :func:`neurobench_model` wraps a model in a ``TorchModel`` that

- registers ``SpikingNeuron`` as an activation module (NeuroBench's ReLU/Sigmoid stay registered);
- records ``output[0]``, the spike tensor, of each of our neurons (other activations as NeuroBench does),
  under the neuron's full module name (``frontend.blocks.0.lif``), so ``ActivationSparsityByLayer``
  keeps layers apart;
- counts the synapses of each Mamba block's ``dt_proj``, whose weight the block applies without calling
  the module (NeuroBench's hook on it would never fire), from the block's ``x_proj`` output, as
  ``OpCounter`` does;
- takes NeuroBench's batch-first input ``[B, T, ...]`` and feeds the model time-first ``[T, B, ...]``,
  returning logits ``[B, classes]``.

The synaptic operations NeuroBench then reports equal ``OpCounter``'s ``synops_*`` counts, and the
activation sparsity it reports is the fraction of zero spikes over every spiking neuron, time step and
sample, which is what ``ActivityMonitor.activation_sparsity`` (``mambaspike eval``) reports for a model
whose only activation modules are our neurons (a ReLU or Sigmoid module, as in the non-spiking stem of
the ``mamba`` baseline, NeuroBench counts too). NeuroBench is optional: it is imported when one of these
functions is called.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mambaspike.neurons.modules import SpikingNeuron
from mambaspike.ssm.mamba import MambaBlock

INSTALL_HINT = "python -m pip install --no-deps -r requirements-nodeps.txt (neurobench 2.3.0; needs snntorch)"

_CLASSES: dict = {}


def _neurobench():
    """NeuroBench's ``TorchModel``, ``NeuronHook``, ``LayerHook`` and ``Benchmark``, or an ImportError saying
    how to install it."""
    try:
        from neurobench.benchmarks import Benchmark
        from neurobench.hooks.layer import LayerHook
        from neurobench.hooks.neuron import NeuronHook
        from neurobench.models import TorchModel
    except ImportError as e:
        raise ImportError(f"NeuroBench is not installed ({e}); install it with: {INSTALL_HINT}") from e
    return TorchModel, NeuronHook, LayerHook, Benchmark


def _adapter_class():
    """The ``TorchModel`` subclass of the module docstring (built on first use: it subclasses NeuroBench's)."""
    if _CLASSES:
        return _CLASSES["model"]
    TorchModel, NeuronHook, LayerHook, _ = _neurobench()

    class SpikeHook(NeuronHook):
        """NeuroBench's activation hook; for our neurons it records the spikes, ``output[0]``."""

        def hook_fn(self, layer, input, output):
            if isinstance(layer, SpikingNeuron):
                self.activation_outputs.append(output[0])
            else:
                super().hook_fn(layer, input, output)

    class DtProjHook:
        """A NeuroBench connection hook (``layer``, ``inputs``, ``hook``, ``register_hook``, ``reset``,
        ``close``, as ``LayerHook``) for a Mamba block's ``dt_proj``: records its input, the first
        ``rank`` features of the block's ``x_proj`` output ``[B, L, rank]``, as a one-element tuple."""

        def __init__(self, block: MambaBlock):
            self.layer, self.source, self.inputs = block.dt_proj, block.x_proj, []
            rank, inputs, source = block.cfg.rank, self.inputs, block.x_proj

            def hook_fn(module, args, output):
                if module is source:  # not the binary copy SynapticOperations makes of x_proj
                    inputs.append((output[..., :rank],))

            self._fn = hook_fn
            self.register_hook()

        def register_hook(self):
            self.hook = self.source.register_forward_hook(self._fn)

        def reset(self):
            self.inputs.clear()

        def close(self):
            self.hook.remove()

    class MambaSpikeTorchModel(TorchModel):
        """NeuroBench ``TorchModel`` of one of our models: batch-first input ``[B, T, ...]`` in, logits
        ``[B, classes]`` out; our ``SpikingNeuron`` modules count as activations."""

        def __init__(self, net: nn.Module):
            super().__init__(net)
            self.add_activation_module(SpikingNeuron)

        def __call__(self, batch: torch.Tensor) -> torch.Tensor:
            return self.net(batch.transpose(0, 1).contiguous())  # logits [B, classes]

        def activation_layers(self) -> list[dict]:
            """The activation modules NeuroBench's own search finds (the outermost ones: none inside
            another), named by their full module names; the network itself counts too when it is one."""
            acts = tuple(self.activation_modules)
            found = []
            for name, m in self.net.named_modules():
                outer = [f["layer_name"] for f in found]
                if isinstance(m, acts) and not any(p == "" or name.startswith(p + ".") for p in outer):
                    found.append({"layer_name": name, "layer": m})
            return found

        def register_hooks(self):
            for layer in self.activation_layers():
                self.activation_hooks.append(SpikeHook(layer["layer"], layer["layer_name"]))
            blocks = [m for m in self.net.modules() if isinstance(m, MambaBlock)]
            applied = {id(b.dt_proj) for b in blocks}  # weights used without calling the module
            for layer in self.connection_layers():
                if id(layer) not in applied:
                    self.connection_hooks.append(LayerHook(layer))
            self.connection_hooks += [DtProjHook(b) for b in blocks]

    _CLASSES["model"] = MambaSpikeTorchModel
    return MambaSpikeTorchModel


def neurobench_model(model: nn.Module):
    """``model`` (time-first, ``[T, B, ...]``) as a NeuroBench ``TorchModel`` that sees our spiking neurons
    (see the module docstring); puts ``model`` in eval mode."""
    return _adapter_class()(model)


def neurobench_loader(dataset: Dataset, batch_size: int = 64) -> DataLoader:
    """Batches of ``dataset`` (samples ``(frames [T, ...], label)``) in NeuroBench's layout:
    ``(frames [B, T, ...], labels [B])``."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


def neurobench_benchmark(model: nn.Module, dataset: Dataset, batch_size: int = 64) -> dict:
    """NeuroBench's ``Benchmark`` of ``model`` on ``dataset``: ``Footprint``, ``ConnectionSparsity``,
    ``ClassificationAccuracy`` (argmax of the logits), ``ActivationSparsity`` and ``SynapticOperations``
    (per sample: ``Effective_MACs``, ``Effective_ACs``, ``Dense``), as NeuroBench returns them."""
    _, _, _, Benchmark = _neurobench()
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, SynapticOperations

    metrics = [[Footprint, ConnectionSparsity], [ClassificationAccuracy, ActivationSparsity, SynapticOperations]]
    nb_model = neurobench_model(model)
    bench = Benchmark(nb_model, neurobench_loader(dataset, batch_size), [], [lambda p: p.argmax(1)], metrics)
    try:
        with torch.no_grad():
            return bench.run(quiet=True)
    finally:
        nb_model.cleanup_hooks()  # Benchmark leaves its hooks on the model until it is garbage-collected


__all__ = ["INSTALL_HINT", "neurobench_benchmark", "neurobench_loader", "neurobench_model"]
