"""Gradient checkpointing shared by the U-Net and the autoencoder's encoder and decoder."""

from __future__ import annotations

import torch
from torch import nn


def run_block(owner: nn.Module, block: nn.Module, *args: torch.Tensor | dict | None) -> torch.Tensor:
    """block(*args); while training with `owner.gradient_checkpointing` on, its activations are recomputed in
    backward instead of stored. diffusers' `enable_gradient_checkpointing()` sets that flag (and the
    `_gradient_checkpointing_func` it calls) on every submodule of a model that has the attribute."""
    if owner.gradient_checkpointing and torch.is_grad_enabled():
        return owner._gradient_checkpointing_func(block, *args)
    return block(*args)
