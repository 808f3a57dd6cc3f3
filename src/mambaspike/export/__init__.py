"""Export a trained model: ONNX (the whole model) and NIR (the spiking front-end)."""

from mambaspike.export.core import FORMATS, export_onnx, export_run, frontend_to_nir

__all__ = ["FORMATS", "export_onnx", "export_run", "frontend_to_nir"]
