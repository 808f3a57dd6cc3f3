"""Data-parallel training on PyTorch's own engine: ``torchrun ... -m mambaspike train``.

Under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) the trainer runs one process per rank with
DistributedDataParallel: gloo on CPU, NCCL on CUDA. The global batch stays ``--batch-size``: each
step, every rank takes its share of the same global batch (``shard``) and weights its loss by its
share, so DDP's gradient average equals the single-process gradient of the whole batch (BatchNorm
statistics are per rank, so results match a single process up to that and floating-point order).
Rank 0 alone validates, writes checkpoints and logs; step statistics and the stop flag are summed
over ranks each step, so every rank takes the same decisions (stop, non-finite loss) together.

Everything here is a no-op for a single process.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mambaspike.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device: expected auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is available; use --device cpu")
    return device


@dataclass(frozen=True)
class Context:
    """This process's place in the run: ``rank`` of ``world_size`` processes, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this context initialised the process group (and tears it down)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device: str = "auto") -> Context:
    """The context of this process: single-process, or one rank of a ``torchrun`` launch."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return Context(device=dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank=rank, world_size=world, local_rank=local, device=dev, owns_group=owns)


def shutdown(ctx: Context) -> None:
    """Destroy the process group this context created, after freeing what still refers to it (a DDP
    wrapper, its reducer and pending works caught in reference cycles), so that nothing holding gloo's
    threads or buffers is left to be destroyed during interpreter finalization."""
    if ctx.owns_group and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def shard(batch: list[int], ctx: Context) -> tuple[list[int], float]:
    """This rank's part of a global batch and its loss weight.

    The rank takes ``batch[rank::world_size]``; its weight ``world_size * len(part) / len(batch)``
    makes DDP's average of the ranks' gradients the gradient of the whole batch's mean loss. A rank
    left without samples (a short last batch) runs the batch's first sample with weight 0, so every
    rank still takes part in the gradient all-reduce.
    """
    if not ctx.enabled:
        return batch, 1.0
    part = batch[ctx.rank :: ctx.world_size]
    if not part:
        return batch[:1], 0.0
    return part, ctx.world_size * len(part) / len(batch)


def all_sum(values: list[float], ctx: Context) -> list[float]:
    """Sum a few numbers over ranks (identity for a single process)."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def barrier(ctx: Context) -> None:
    if ctx.enabled:
        dist.barrier()


def main_first(fn: Callable[[], object], ctx: Context, share: bool = True):
    """Run ``fn`` on rank 0 first (e.g. choosing the run directory, generating data); an error there is
    raised on every rank. With ``share`` the result is sent to all ranks, else the others get ``None``."""
    if not ctx.enabled:
        return fn()
    box: list = [None]
    if ctx.is_main:
        try:
            value = fn()
            box[0] = ("ok", value if share else None)
        except Exception as err:  # sent to the other ranks, raised everywhere
            box[0] = ("error", err)
            value = None
    dist.broadcast_object_list(box, src=0)
    kind, payload = box[0]
    if kind == "error":
        raise payload
    return value if ctx.is_main else payload
