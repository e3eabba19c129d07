"""Attention blocks: plain spatial self-attention (autoencoder mid-block).

The U-Net's SpatialTransformer (self-attention, cross-attention, feed-forward) lives here too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hfldm.nn.resnet import group_norm


class SelfAttention2d(nn.Module):
    """Single-head self-attention over the H*W positions of a feature map, with a residual connection."""

    def __init__(self, channels: int, norm_groups: int = 32):
        super().__init__()
        self.norm = group_norm(channels, norm_groups)
        self.to_qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        q, k, v = self.to_qkv(self.norm(x)).chunk(3, dim=1)
        # (B, C, H, W) -> (B, 1, H*W, C)
        q, k, v = (t.flatten(2).transpose(1, 2).unsqueeze(1) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        # (B, 1, H*W, C) -> (B, C, H, W)
        out = out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)
