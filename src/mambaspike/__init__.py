"""mambaspike: a spiking front-end in front of a Mamba (selective state-space) backbone.

Data flows one way (see DESIGN.md)::

    events / frames -> encode -> SpikingFrontEnd -> SpikeInterface -> Mamba backbone -> head -> logits
       [T, B, ...]                [T, B, C, H, W]    [T,B,...]->[B,L,D]    [B, L, D]        [B, classes]
"""

__version__ = "0.1.0"
