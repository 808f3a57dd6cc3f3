"""Batch-1 inference latency of the Mamba backbone: fused kernels vs the reference forward.

    PYTHONPATH=src python benchmarks/mamba_infer_latency.py [--threads 1 2] [--calls 50]

Sequential-MNIST shape (B 1, L 196, d_model 128, 2 layers, N 16). The two paths alternate call by
call, so load from other processes hits both alike; median and 10th percentile in ms.
"""

import argparse

import torch

from mambaspike.bench import alternating_ms
from mambaspike.ssm.mamba import MambaBackbone, MambaConfig


def reference_forward(bb: MambaBackbone, x: torch.Tensor) -> torch.Tensor:
    """The backbone with every block on ``forward_reference``."""
    for layer in bb.layers:
        x = x + layer.mixer.forward_reference(layer.norm(x))[0]
    return bb.norm_f(x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--L", type=int, default=196)
    args = ap.parse_args()
    torch.manual_seed(0)
    bb = MambaBackbone(MambaConfig(d_model=128, n_layers=2, d_state=16)).eval()
    x = torch.randn(1, args.L, 128)
    paths = {"reference": lambda: reference_forward(bb, x), "fused": lambda: bb(x)[0]}
    with torch.no_grad():
        diff = (paths["fused"]() - paths["reference"]()).abs().max().item()
        for threads, name, med, p10 in alternating_ms(paths, args.threads, args.calls, warmup=10):
            print(
                f"threads {threads}  {name:9s}  median {med:6.3f} ms  p10 {p10:6.3f} ms"
                f"  (max |fused - reference| {diff:.1e})"
            )


if __name__ == "__main__":
    main()
