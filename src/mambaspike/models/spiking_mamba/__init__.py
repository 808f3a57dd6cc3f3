"""Spiking Mamba (Miao, "Transformer Mamba with Spiking"): spiking S6, spiking Mamba and attention blocks,
a spiking patch generator, and the model that stacks them."""

from mambaspike.models.spiking_mamba.model import SpikingMamba

__all__ = ["SpikingMamba"]
