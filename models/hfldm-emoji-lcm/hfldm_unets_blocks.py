"""The U-Net's unit (a ResBlock, optionally followed by a SpatialTransformer) and its resolution level."""

from __future__ import annotations

import torch
from torch import nn

from .hfldm_nn_attention import SpatialTransformer
from .hfldm_nn_resnet import ResBlock


class ResAttnBlock(nn.Module):
    """ResBlock(x, t) then, at attention levels, SpatialTransformer(x, τ_θ(y))."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        attention: bool,
        heads: int,
        context_dim: int | None,
        transformer_layers: int,
        dropout: float,
        norm_groups: int,
    ):
        super().__init__()
        self.resnet = ResBlock(in_channels, out_channels, temb_channels, dropout, norm_groups)
        self.attention = (
            SpatialTransformer(out_channels, heads, context_dim, transformer_layers, dropout, norm_groups)
            if attention
            else None
        )

    def forward(
        self,
        x: torch.Tensor,
        temb: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        attention_kwargs: dict | None = None,
    ) -> torch.Tensor:
        """x: (B, C_in, H, W), temb: (B, T), context: (B, L, D), mask: (B, 1, L) -> (B, C_out, H, W);
        `attention_kwargs` go to the attention processors (the U-Net's `cross_attention_kwargs`)."""
        x = self.resnet(x, temb)
        return x if self.attention is None else self.attention(x, context, mask, attention_kwargs)


class Level(nn.Module):
    """The blocks of one resolution of the down or up path, and the resampling (or None) that ends it."""

    def __init__(self, blocks: list[ResAttnBlock], resample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.resample = resample
