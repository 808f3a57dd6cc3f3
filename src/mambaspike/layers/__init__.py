"""Building blocks of the pipeline between the neurons and the sequence model.

- :mod:`~mambaspike.layers.blocks`: spiking convolution / dense blocks (conv -> BatchNorm -> LIF, recurrence).
- :mod:`~mambaspike.layers.frontend`: the spiking front-end (``SpikingFrontEnd``), and its fused
  inference path (:mod:`~mambaspike.layers.frontend_fused`).
- :mod:`~mambaspike.layers.stem`: the baselines' non-spiking conv stem (``ConvStem``).
- :mod:`~mambaspike.layers.pooling`: temporal pooling, whole-sequence and streaming.
- :mod:`~mambaspike.layers.interface`: spike counts over windows -> rate-normalised ``[B, L, D]``.
- :mod:`~mambaspike.layers.head`: pool over time, LayerNorm, linear -> logits.
"""
