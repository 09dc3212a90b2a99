"""torchrun / DistributedDataParallel plumbing: which rank am I, set up, tear down.

Launch with ``torchrun --nproc_per_node=K -m goalrl.cli pretrain ...``; torchrun sets
RANK, LOCAL_RANK and WORLD_SIZE. Under SLURM, hydra's submitit launcher
(``--multirun hydra/launcher=slurm``, configs/hydra/launcher/slurm.yaml) starts one task
per rank instead; those tasks carry no torchrun variables, so they are derived from the
submitit job environment (first host of the job as master). gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from goalrl.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    if "RANK" not in os.environ and os.environ.get("SUBMITIT_EXECUTOR"):
        export_submitit_env()
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
    )


def export_submitit_env() -> None:
    """Set MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK from a submitit (SLURM) task."""
    from submitit.helpers import TorchDistributedEnvironment

    # CUDA_VISIBLE_DEVICES is left alone: resolve_device picks cuda:<LOCAL_RANK> itself
    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` -> cuda:<local_rank> when CUDA is available, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device=cuda but torch sees no CUDA device; use device=cpu or auto")
        return torch.device("cuda", info.local_rank)
    if name != "cpu" and not name.startswith("cuda:"):
        raise UserError(f"device={name!r}: choose auto, cpu, cuda or cuda:<index>")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """What trained a run, for its summary: the GPU's model, or the CPU's core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores)"


def init_distributed(info: DistInfo, device: torch.device) -> None:
    if not info.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
