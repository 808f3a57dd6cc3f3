#!/usr/bin/env bash
# The device check: every CUDA path against its CPU reference, then model timings.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR] [extra 'mambaspike bench gpu' options]
#
# Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md (default OUT_DIR: benchmarks/results/gpu).
# Exits non-zero at the first mismatch, naming the path and its error. Without a CUDA device it is a
# dry run: every step named, the CPU-capable ones run at tiny shapes, the others "skipped: no CUDA device".
# Optional: pip install -e '.[cuda]' first for the mamba-ssm backend, and triton for the Triton kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/results/gpu}"
shift || true
export MAMBASPIKE_KERNELS="${MAMBASPIKE_KERNELS:-strict}"
PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} python -m mambaspike bench gpu --out "$out" "$@"
