"""``mambaspike export``: a trained run to ONNX, or its spiking front-end to NIR."""

from __future__ import annotations

import argparse

from mambaspike.cli.options import positive_float

HELP = "export a trained model to ONNX, or its spiking front-end to NIR"


def block_range(s: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in s.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP block indices (e.g. 1:3), got {s!r}") from None
    return a, b


def add_parser(sub) -> argparse.ArgumentParser:
    from mambaspike.export import FORMATS

    e = sub.add_parser(
        "export",
        help=HELP,
        description="onnx: the inference path of the validation-selected checkpoint (input frames "
        "[T, batch, C, H, W] with the run's T, dynamic batch), checked with onnxruntime against PyTorch. "
        "nir: the spiking front-end (BatchNorm folded, LIF as NIR's continuous-time LIF); the Mamba backbone "
        "has no NIR form and what is not exported is stated. Needs: pip install 'mambaspike[export]'.",
    )
    e.add_argument("--checkpoint", required=True, metavar="DIR", help="run directory written by 'mambaspike train'")
    e.add_argument("--format", required=True, choices=FORMATS, help="export format")
    e.add_argument(
        "--output", default=None, metavar="FILE", help="output file (default: DIR/model.onnx or DIR/model.nir)"
    )
    e.add_argument(
        "--atol", type=positive_float, default=1e-4, help="onnx: largest allowed |onnxruntime - PyTorch| of the logits"
    )
    e.add_argument(
        "--blocks",
        type=block_range,
        default=None,
        metavar="START:STOP",
        help="nir: front-end blocks to export (default: those before the temporal pooling)",
    )
    e.add_argument(
        "--bin-seconds",
        type=positive_float,
        default=None,
        metavar="S",
        help="nir: seconds one input bin stands for in the graph's time constants (default: the run's "
        "bin; snnTorch's importer simulates at 1e-4 s, so use 1e-4 to import there)",
    )
    return e


def run(args: argparse.Namespace) -> int:
    from mambaspike.export import export_run

    export_run(
        args.checkpoint, args.format, args.output, atol=args.atol, blocks=args.blocks, input_dt_s=args.bin_seconds
    )
    return 0
