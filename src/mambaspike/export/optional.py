"""The optional dependencies of exporting (onnx, onnxruntime, nir), imported when an export needs them."""

from __future__ import annotations

from mambaspike.errors import ExportError


def require(module: str, extra: str = "export"):
    """The module ``module``, imported; an ``ExportError`` naming the install command when it is missing."""
    try:
        return __import__(module)
    except ImportError:
        raise ExportError(
            f"{module} is not installed; install the optional dependencies with: pip install 'mambaspike[{extra}]'"
        ) from None
