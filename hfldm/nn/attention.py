"""Attention blocks: plain spatial self-attention (autoencoder mid-block) and the U-Net's SpatialTransformer.

SpatialTransformer (LDM Sec. 3.3): self-attention, then cross-attention with Q from the image features and
K, V from τ_θ(y), then a GEGLU feed-forward. All attention goes through F.scaled_dot_product_attention.
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


def _plain(*layers: nn.Module) -> bool:
    """True when every layer is a bias-free nn.Linear, not wrapped by an adapter (e.g. a peft LoRA layer)."""
    return all(type(layer) is nn.Linear and layer.bias is None for layer in layers)


class Attention(nn.Module):
    """Multi-head attention: Q from `x`; K, V from `context` (cross-attention) or from `x` (self-attention).

    The projections are named like diffusers' (to_q, to_k, to_v, to_out.0) so that LoRA target modules written
    for diffusers' U-Net apply unchanged. While they are plain linears, Q, K, V (or K, V) are computed with
    one matmul over the concatenated weights; the result is the same as three separate ones.
    """

    def __init__(self, query_dim: int, heads: int, context_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        if query_dim % heads:
            raise ValueError(f"heads: {heads} does not divide the width {query_dim}")
        self.heads = heads
        self.is_cross = context_dim is not None
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, query_dim, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, query_dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(query_dim, query_dim), nn.Dropout(dropout)])

    def _split_heads(self, t: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
        # (B, N, n * heads * d) -> (B, N, n, heads, d) -> n views of (B, heads, N, d); unbinding dim 2 makes
        # the backward a single stack into (B, N, n, heads, d), already the layout of the linear's output
        return tuple(part.transpose(1, 2) for part in t.unflatten(-1, (n, self.heads, -1)).unbind(2))

    def _qkv(self, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        if not self.is_cross and _plain(self.to_q, self.to_k, self.to_v):
            weight = torch.cat([self.to_q.weight, self.to_k.weight, self.to_v.weight])
            return self._split_heads(F.linear(x, weight), 3)
        context = x if context is None else context
        (q,) = self._split_heads(self.to_q(x), 1)
        if _plain(self.to_k, self.to_v):
            k, v = self._split_heads(F.linear(context, torch.cat([self.to_k.weight, self.to_v.weight])), 2)
        else:
            (k,), (v,) = self._split_heads(self.to_k(context), 1), self._split_heads(self.to_v(context), 1)
        return q, k, v

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (B, N, C), context: (B, L, C_ctx), mask: (B, 1, 1, L) bool, True = attend -> (B, N, C)."""
        if self.is_cross and context is None:
            raise ValueError("encoder_hidden_states: cross-attention needs a context")
        q, k, v = self._qkv(x, context if self.is_cross else None)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask if self.is_cross else None)
        # (B, heads, N, d) -> (B, N, heads * d)
        out = out.transpose(1, 2).flatten(2)
        return self.to_out[1](self.to_out[0](out))


class FeedForward(nn.Module):
    """GEGLU feed-forward (Shazeer 2020): (x W + b) * GELU(x V + c), then a linear back to `dim`."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * mult * dim)  # W and V side by side: one matmul
        self.dropout = nn.Dropout(dropout)
        self.proj_out = nn.Linear(mult * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, dim) -> (B, N, dim)."""
        h, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(self.dropout(h * F.gelu(gate)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer: self-attention, cross-attention to τ_θ(y) (if any), feed-forward."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim) if context_dim is not None else None
        self.attn2 = Attention(dim, heads, context_dim, dropout) if context_dim is not None else None
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dropout=dropout)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (B, N, dim), context: (B, L, context_dim) -> (B, N, dim)."""
        x = x + self.attn1(self.norm1(x))
        if self.attn2 is not None:
            x = x + self.attn2(self.norm2(x), context, mask)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """LDM's attention block on a feature map: GroupNorm, proj_in, transformer layers, proj_out, residual.

    `context_dim=None` gives self-attention only (unconditional or class-conditional U-Nets). proj_out is
    zero-initialised so that the block starts as the identity.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        context_dim: int | None = None,
        num_layers: int = 1,
        dropout: float = 0.0,
        norm_groups: int = 32,
    ):
        super().__init__()
        self.norm = group_norm(channels, norm_groups)
        self.proj_in = nn.Linear(channels, channels)
        blocks = [TransformerBlock(channels, heads, context_dim, dropout) for _ in range(num_layers)]
        self.transformer_blocks = nn.ModuleList(blocks)
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (B, C, H, W), context: (B, L, context_dim), mask: (B, 1, 1, L) bool -> (B, C, H, W)."""
        b, c, h, w = x.shape
        # (B, C, H, W) -> (B, H*W, C)
        tokens = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        for block in self.transformer_blocks:
            tokens = block(tokens, context, mask)
        # (B, H*W, C) -> (B, C, H, W), a strided view: the residual add does the only copy
        return x + self.proj_out(tokens).transpose(1, 2).unflatten(2, (h, w))
