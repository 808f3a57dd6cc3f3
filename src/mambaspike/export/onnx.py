"""Export a trained model to ONNX for deployment.

``export_onnx(model, input_shape, T, path)`` writes the **inference path** (eval mode) of any registered
model: input ``frames [T, batch, C, H, W]`` -> output ``logits [batch, classes]``. The batch is dynamic;
the number of time bins ``T`` is fixed at export (the spiking neurons and the selective scan are loops
over time, unrolled by the tracer). Then onnxruntime runs the file on fresh inputs at two batch sizes
and the largest absolute difference to PyTorch's logits is returned; above ``atol`` it is an error.

While exporting (``export_mode``): spike functions are plain Heaviside steps (the surrogate gradient only
matters in backward), every fast backend (neurons, selective scan) is set to the plain torch
``"reference"`` path, and adaptive spatial pooling becomes the fixed max-pooling it amounts to at the
export input size. Everything is restored afterwards.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mambaspike.errors import ExportError
from mambaspike.export.optional import require
from mambaspike.neurons.modules import SpikingNeuron


class Heaviside(nn.Module):
    """The forward pass of every surrogate spike function: ``s = (x >= 0)``, as plain tensor ops."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x >= 0).to(x.dtype)


def _fixed_pool(pool: nn.Module, hw: tuple[int, int], where: str) -> nn.Module:
    out = pool.output_size
    oh, ow = (out, out) if isinstance(out, int) else out
    oh, ow = oh or hw[0], ow or hw[1]
    if hw[0] % oh or hw[1] % ow:
        raise ExportError(
            f"{where}: adaptive pooling from {hw[0]}x{hw[1]} to {oh}x{ow} has unequal windows and no fixed-pool "
            f"equivalent; export with an input size whose feature map is a multiple of {oh}x{ow}"
        )
    k = (hw[0] // oh, hw[1] // ow)
    return nn.MaxPool2d(k, k) if isinstance(pool, nn.AdaptiveMaxPool2d) else nn.AvgPool2d(k, k)


@contextmanager
def export_mode(model: nn.Module, example: torch.Tensor):
    """Within the block, ``model`` runs its inference path with tracer-friendly parts (see the module
    docstring); ``example`` (a valid input) fixes the adaptive-pooling input sizes. Restored on exit."""
    undo = []
    was_training = model.training
    model.eval()
    try:
        for m in model.modules():
            if isinstance(m, SpikingNeuron):
                if hasattr(m, "backend"):
                    undo.append((m, "backend", m.backend))
                    m.backend = "reference"
                if isinstance(getattr(m, "spike_fn", None), nn.Module):
                    undo.append((m, "spike_fn", m.spike_fn))
                    m.spike_fn = Heaviside()
            cfg = getattr(m, "cfg", None)
            if hasattr(cfg, "scan_backend"):
                undo.append((cfg, "scan_backend", cfg.scan_backend))
                cfg.scan_backend = "reference"
        # adaptive pooling: record its input size on the example, then swap in the fixed pool
        sizes, hooks = {}, []
        adaptive = [
            (n, m) for n, m in model.named_modules() if isinstance(m, (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d))
        ]
        for name, m in adaptive:
            record = lambda mod, inp, name=name: sizes.update({name: inp[0].shape[-2:]})  # noqa: E731
            hooks.append(m.register_forward_pre_hook(record))
        with torch.no_grad():
            model(example)
        for h in hooks:
            h.remove()
        for name, m in adaptive:
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            undo.append((parent, attr, m))
            parent._modules[attr] = _fixed_pool(m, tuple(sizes[name]), name)
        yield model
    finally:
        for obj, attr, value in reversed(undo):
            if isinstance(obj, nn.Module) and attr in obj._modules:
                obj._modules[attr] = value
            else:
                setattr(obj, attr, value)
        model.train(was_training)


def example_input(input_shape, T: int, batch: int, seed: int = 0) -> torch.Tensor:
    """Event-count-like frames ``[T, batch, C, H, W]`` (small non-negative integers)."""
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((T, batch, *input_shape), 0.3), generator=g)


def export_onnx(
    model: nn.Module,
    input_shape: tuple,
    T: int,
    path: str | Path,
    opset: int = 17,
    atol: float = 1e-4,
    check_batches: tuple[int, ...] = (1, 3),
) -> dict:
    """Write ``model``'s inference path to ``path`` and check it with onnxruntime.

    Returns ``{"path", "T", "max_abs_diff", "atol", "batches"}``; raises ``ExportError`` when the
    largest absolute difference of the logits exceeds ``atol``.
    """
    onnx = require("onnx")
    ort = require("onnxruntime")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = example_input(input_shape, T, 2)
    with export_mode(model, example):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about unrolled Python loops
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["frames"],
                output_names=["logits"],
                dynamic_axes={"frames": {1: "batch"}, "logits": {0: "batch"}},
            )
        onnx.checker.check_model(str(path), full_check=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        diff = 0.0
        for i, b in enumerate(check_batches):
            x = example_input(input_shape, T, b, seed=1 + i)
            with torch.no_grad():
                ref = model(x).float().numpy()
            (out,) = session.run(["logits"], {"frames": x.numpy()})
            diff = max(diff, float(np.abs(out - ref).max()))
    result = {"path": str(path), "T": T, "max_abs_diff": diff, "atol": atol, "batches": list(check_batches)}
    if not diff <= atol:
        raise ExportError(f"{path}: onnxruntime's logits differ from PyTorch's by {diff:.3g} > tolerance {atol:g}")
    return result
