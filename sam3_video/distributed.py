"""Process-group setup for torchrun and plain `python -m`: one code path for 1..N processes.

NCCL when CUDA is available, gloo on CPU. Without torchrun's environment variables the
program runs as a single process and no process group is created at all.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(use_cuda: bool | None = None) -> Dist:
    """Create the process group when launched by torchrun; pick this rank's device."""
    if use_cuda is None:
        use_cuda = torch.cuda.is_available()
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if launched_by_torchrun() and world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                device_id=device if use_cuda else None)
    return Dist(rank=rank, world_size=world, local_rank=local_rank, device=device)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def all_reduce_mean(value: float, d: Dist) -> float:
    """Mean of a Python float over ranks (for logging only)."""
    if not d.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return float(t.item()) / d.world_size


def any_rank(flag: bool, d: Dist) -> bool:
    """True on every rank when `flag` is true on at least one (e.g. a SIGTERM seen by one)."""
    if not d.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def shutdown(*holders) -> None:
    """Tear the process group down without the gloo hang (see compat.release_process_group):
    pass every object that holds the group, chiefly the DDP-wrapped model."""
    from sam3_video import compat

    compat.release_process_group(*holders)
