"""LDM's convolutional encoder E and decoder D (Rombach et al. 2022, Sec. 3.1 and Appendix G).

With L = len(block_out_channels) levels, E downsamples by f = 2^(L-1) and D upsamples by the same f.
Each level is `layers_per_block` ResBlocks (decoder: one more), the middle is ResBlock-attention-ResBlock.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .hfldm_nn_attention import SelfAttention2d
from .hfldm_nn_checkpointing import run_block
from .hfldm_nn_resnet import Downsample, ResBlock, Upsample, group_norm


def check_architecture(block_out_channels: Sequence[int], layers_per_block: int) -> None:
    """Raise ValueError naming the argument if the level widths or block count cannot build a network."""
    if len(block_out_channels) == 0:
        raise ValueError("block_out_channels must list at least one level width, got an empty sequence")
    if any(int(c) < 1 for c in block_out_channels):
        raise ValueError(f"block_out_channels must be positive, got {tuple(block_out_channels)}")
    if layers_per_block < 1:
        raise ValueError(f"layers_per_block must be >= 1, got {layers_per_block}")


def mid_block(channels: int, norm_groups: int) -> nn.Sequential:
    """ResBlock, self-attention, ResBlock at the lowest resolution; (B, C, h, w) -> (B, C, h, w)."""
    return nn.Sequential(
        ResBlock(channels, channels, norm_groups=norm_groups),
        SelfAttention2d(channels, norm_groups=norm_groups),
        ResBlock(channels, channels, norm_groups=norm_groups),
    )


class _CheckpointedStack(nn.Module):
    """A stack of blocks that diffusers' `enable_gradient_checkpointing` can switch to recomputation."""

    def __init__(self):
        super().__init__()
        self.gradient_checkpointing = False  # set by ModelMixin.enable_gradient_checkpointing


class Encoder(_CheckpointedStack):
    """Image (B, in_channels, H, W) -> features (B, out_channels, H/f, W/f)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        block_out_channels: Sequence[int],
        layers_per_block: int,
        norm_num_groups: int = 32,
    ):
        super().__init__()
        check_architecture(block_out_channels, layers_per_block)
        widths = [int(c) for c in block_out_channels]
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        c_prev = widths[0]
        for level, c in enumerate(widths):
            blocks: list[nn.Module] = []
            for _ in range(layers_per_block):
                blocks.append(ResBlock(c_prev, c, norm_groups=norm_num_groups))
                c_prev = c
            if level < len(widths) - 1:
                blocks.append(Downsample(c))
            self.down_blocks.append(nn.Sequential(*blocks))
        self.mid_block = mid_block(widths[-1], norm_num_groups)
        self.norm_out = group_norm(widths[-1], norm_num_groups)
        self.conv_out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.down_blocks:
            h = run_block(self, block, h)
        h = run_block(self, self.mid_block, h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(_CheckpointedStack):
    """Latent (B, in_channels, h, w) -> image (B, out_channels, h*f, w*f); mirrors `Encoder`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        block_out_channels: Sequence[int],
        layers_per_block: int,
        norm_num_groups: int = 32,
    ):
        super().__init__()
        check_architecture(block_out_channels, layers_per_block)
        widths = [int(c) for c in block_out_channels]
        self.conv_in = nn.Conv2d(in_channels, widths[-1], 3, padding=1)
        self.mid_block = mid_block(widths[-1], norm_num_groups)
        self.up_blocks = nn.ModuleList()
        c_prev = widths[-1]
        for level in reversed(range(len(widths))):
            c = widths[level]
            blocks: list[nn.Module] = []
            for _ in range(layers_per_block + 1):  # LDM's decoder has one block more per level
                blocks.append(ResBlock(c_prev, c, norm_groups=norm_num_groups))
                c_prev = c
            if level > 0:
                blocks.append(Upsample(c))
            self.up_blocks.append(nn.Sequential(*blocks))
        self.norm_out = group_norm(widths[0], norm_num_groups)
        self.conv_out = nn.Conv2d(widths[0], out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        h = run_block(self, self.mid_block, h)
        for block in self.up_blocks:
            h = run_block(self, block, h)
        return self.conv_out(F.silu(self.norm_out(h)))
