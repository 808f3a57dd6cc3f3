"""Export a trained model: ONNX (the whole model, :mod:`~mambaspike.export.onnx`) and NIR (the spiking
front-end, :mod:`~mambaspike.export.nir`); :func:`export_run` exports a training run's checkpoint."""

from mambaspike.export.nir import frontend_to_nir
from mambaspike.export.onnx import export_onnx
from mambaspike.export.run import FORMATS, export_run

__all__ = ["FORMATS", "export_onnx", "export_run", "frontend_to_nir"]
