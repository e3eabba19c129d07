"""Sharded model state with FSDP2 (`torch.distributed.fsdp.fully_shard`), on CPU (gloo) as on GPUs.

Each process holds 1/N of every parameter, gradient and AdamW moment: `fully_shard` turns the parameters
into DTensors sharded on dim 0, gathers a block's weights for its forward and backward, and reduce-scatters
the gradients (averaged over the processes, as DDP's all-reduce does), so N steps give DDP's weights up to
float summation order. Checkpoints are `torch.distributed.checkpoint` folders: each process writes its own
shards, and a run resumes from them with the same number of processes (or another: DCP reshards on load).

What is not here yet: train_ldm.py does not take this path (its accelerate `prepare` would wrap the model
in DDP); `tests/training/test_fsdp.py` trains the U-Net with it directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.fsdp import fully_shard


def check_fsdp_processes(world_size: int | None = None) -> None:
    """ValueError naming --fsdp when it would shard over a single process (nothing to shard)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    if world_size < 2:
        raise ValueError(
            "--fsdp: FSDP with a single process shards nothing; launch with `accelerate launch "
            "--num_processes N` (N >= 2), or leave --fsdp out"
        )


def shard_unet(unet: torch.nn.Module) -> torch.nn.Module:
    """`unet` with each down, mid and up block a unit of its own (gathered only while it computes) and the
    rest (embeddings, in/out convs) in the root unit; changed in place and returned."""
    check_fsdp_processes(torch.distributed.get_world_size())
    blocks = [getattr(unet, name, None) for name in ("down_blocks", "up_blocks")]
    for block in [b for group in blocks if group is not None for b in group]:
        fully_shard(block)
    if getattr(unet, "mid_block", None) is not None:
        fully_shard(unet.mid_block)
    return fully_shard(unet)


def save_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, folder: str | Path) -> None:
    """The sharded model and optimiser state into the DCP folder `folder` (call on every process)."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(folder))


def load_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, folder: str | Path) -> None:
    """Loads a `save_sharded` folder into `model` and `optimizer` (sharded alike; call on every process)."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def full_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole (gathered) state dict of a sharded model on CPU, on process 0 (empty elsewhere): what
    `save_pretrained` writes."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
