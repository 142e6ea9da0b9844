"""Data-parallel training across processes started by `torchrun` (DDP; NCCL on GPUs, gloo on CPUs).

Every process runs the same program on the same data order; rank 0 alone talks to MLflow and
writes files. Outside torchrun everything here is a no-op for a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Process:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def start() -> Process:
    """This process's place: torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK), or one
    process on CUDA when there is a GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return Process(0, 1, torch.device("cuda" if cuda else "cpu"))
    local = int(os.environ["LOCAL_RANK"])
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Process(dist.get_rank(), world, torch.device(f"cuda:{local}" if cuda else "cpu"))


def share(value: object, process: Process) -> object:
    """Rank 0's `value`, on every rank (for what only rank 0 can look up: run ids)."""
    if process.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def stop(process: Process) -> None:
    if process.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
