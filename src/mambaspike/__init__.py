"""mambaspike: a spiking front-end in front of a Mamba (selective state-space) backbone.

Data flows one way::

    events / frames -> encode -> SpikingFrontEnd -> SpikeInterface -> Mamba backbone -> head -> logits
       [T, B, ...]                [T, B, C, H, W]    [T,B,...]->[B,L,D]    [B, L, D]        [B, classes]

The public API, imported on first use (``import mambaspike.neurons`` loads the neurons alone)::

    import mambaspike as ms
    model = ms.MambaSpike(ms.MambaSpikeConfig(input_shape=(2, 128, 128), num_classes=11, dt_ms=10))
    lif = ms.LIF(tau=20.0, dt=1.0)                                # standalone neurons, [T, B, ...]
    run = ms.load_run("outputs/ndigits-mambaspike-seed0")         # a trained run: config, weights, data
    model = run.model(); test = run.data("test")

Every model's ``forward`` returns logits ``[B, classes]``.
"""

from __future__ import annotations

import importlib

from mambaspike._version import __version__

_EXPORTS = {
    # models and their typed configs
    "MambaSpike": "mambaspike.models.mamba_spike",
    "SpikingMamba": "mambaspike.models.spiking_mamba.model",
    "MambaBaseline": "mambaspike.models.baselines",
    "RNNBaseline": "mambaspike.models.baselines",
    "MambaSpikeConfig": "mambaspike.models.config",
    "FrontEndConfig": "mambaspike.models.config",
    "InterfaceConfig": "mambaspike.models.config",
    "BackboneConfig": "mambaspike.models.config",
    "StemConfig": "mambaspike.models.config",
    "SpikingMambaConfig": "mambaspike.models.config",
    "MambaBaselineConfig": "mambaspike.models.config",
    "RNNBaselineConfig": "mambaspike.models.config",
    "ModelConfig": "mambaspike.models.config",
    "build_model": "mambaspike.models.registry",
    "model_names": "mambaspike.models.registry",
    # building blocks
    "LIF": "mambaspike.neurons.modules",
    "ALIF": "mambaspike.neurons.modules",
    "SynapticLIF": "mambaspike.neurons.modules",
    "SRM": "mambaspike.neurons.modules",
    "SpikingFrontEnd": "mambaspike.layers.frontend",
    "SpikeInterface": "mambaspike.layers.interface",
    "selective_scan": "mambaspike.ssm.scan",
    # trained runs
    "load_run": "mambaspike.training.run",
    "Run": "mambaspike.training.run",
}
_SUBPACKAGES = (
    "neurons",
    "layers",
    "ssm",
    "models",
    "kernels",
    "data",
    "training",
    "evaluation",
    "export",
    "lab",
    "bench",
    "cli",
    "errors",
)

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"mambaspike.{name}")
    raise AttributeError(f"module 'mambaspike' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBPACKAGES})
